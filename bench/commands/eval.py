"""``skd-bench eval``: score a checkpoint on embedded or folder data with the task's convention; with
``--save-images DIR``, also write each restored test image as the scores saw it (uint8 PNG)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from bench.commands import COMMANDS
from bench.spec.basicsr import with_layernorm_hint
from bench.store import stem_part
from skd_core.atomic import atomic_write, atomic_write_json
from skd_core.data import get_task, load_pairs, parse_spec
from skd_core.errors import ConfigError
from skd_core.models import CheckpointError, build_model, load_checkpoint
from skd_core.train.config import MIN_EVAL_SIDE
from skd_core.train.evaluate import evaluate

from .argtypes import add_device, eval_side, folder, job_device
from .output import emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help=COMMANDS["eval"][1])
    p.add_argument("--model", required=True, help="model preset the checkpoint belongs to")
    p.add_argument("--checkpoint", type=Path, required=True, help=".pth (official or bare) or .safetensors")
    p.add_argument("--data", required=True, help="embedded:TASK or folder:PATH")
    p.add_argument("--task", default=None, help="task of a folder set (decides Y vs RGB scoring)")
    p.add_argument("--layout", default=None, help="folder layout preset (default: detected)")
    p.add_argument("--max-side", type=eval_side, default=0,
                   help=f"centre-crop images to this side (0: whole, default; else >= {MIN_EVAL_SIDE})")
    add_device(p)
    p.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    p.add_argument("--save-images", type=folder, default=None, metavar="DIR",
                   help="write each restored test image to DIR/<name>.png, quantised as the scores are "
                        "(clamp to [0, 1], x255, round: uint8)")
    p.add_argument("--json", action="store_true", help="print JSON (per-image and mean)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = parse_spec(args.data, args.task)
    if spec.task is None:
        raise ConfigError(f"--data {args.data!r} needs a task: use embedded:TASK or pass --task")
    task = get_task(spec.task)
    device = job_device(args.device)
    try:
        model = load_checkpoint(build_model(args.model), args.checkpoint).to(device)
    except CheckpointError as exc:
        raise with_layernorm_hint(exc, args.model, args.checkpoint) from None
    keep_all = (lambda index, name: True) if args.save_images else None
    result = evaluate(model, load_pairs(args.data, task, args.layout), task, device, args.max_side, keep_all)
    record = {"model": args.model, "checkpoint": str(args.checkpoint), "data": args.data, "task": task.name,
              "convention": f"PSNR dB / SSIM on {result.color.upper()} (BasicSR semantics: uint8, "
                            f"crop_border {result.crop_border})", **result.to_dict()}
    if args.save_images:
        record["images"] = save_images(args.save_images, {n: out for n, (_, _, out) in result.kept.items()})
    if args.out:
        atomic_write_json(args.out, record)
    if args.json:
        emit(record, True)
    else:
        emit(result.per_image + [{"name": "MEAN", "psnr": result.psnr, "ssim": result.ssim,
                                  "input_psnr": result.input_psnr, "input_ssim": result.input_ssim}], False)
        print(record["convention"])
        if args.save_images:
            print(f"restored images: {len(record['images'])} PNG in {args.save_images}")
    return 0


def save_images(folder: Path, images: Mapping[str, np.ndarray]) -> dict[str, str]:
    """Write uint8 ``H, W, 3`` images as ``folder/<name>.png`` (name made file-safe); ``name -> path``."""
    paths = {}
    for name, image in images.items():
        path = folder / f"{stem_part(name)}.png"
        atomic_write(path, lambda p, a=image: Image.fromarray(np.asarray(a, dtype=np.uint8)).save(p, format="PNG"))
        paths[name] = str(path)
    return paths
