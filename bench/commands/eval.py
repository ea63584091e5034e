"""``skd-bench eval``: score a checkpoint on embedded or folder data with the task's convention."""

from __future__ import annotations

import argparse
from pathlib import Path

from skd_core.atomic import atomic_write_json
from skd_core.complexity.env import resolve_device
from skd_core.data import get_task, load_pairs, parse_spec
from skd_core.errors import ConfigError
from skd_core.models import build_model, load_checkpoint
from skd_core.train.config import MIN_EVAL_SIDE
from skd_core.train.evaluate import evaluate

from .argtypes import eval_side
from .output import emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="PSNR/SSIM of a model checkpoint on a test set")
    p.add_argument("--model", required=True, help="model preset the checkpoint belongs to")
    p.add_argument("--checkpoint", type=Path, required=True, help=".pth (official or bare) or .safetensors")
    p.add_argument("--data", required=True, help="embedded:TASK or folder:PATH")
    p.add_argument("--task", default=None, help="task of a folder set (decides Y vs RGB scoring)")
    p.add_argument("--layout", default=None, help="folder layout preset (default: detected)")
    p.add_argument("--max-side", type=eval_side, default=0,
                   help=f"centre-crop images to this side (0: whole, default; else >= {MIN_EVAL_SIDE})")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    p.add_argument("--json", action="store_true", help="print JSON (per-image and mean)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = parse_spec(args.data, args.task)
    if spec.task is None:
        raise ConfigError(f"--data {args.data!r} needs a task: use embedded:TASK or pass --task")
    task = get_task(spec.task)
    device = resolve_device(args.device)
    model = load_checkpoint(build_model(args.model), args.checkpoint).to(device)
    result = evaluate(model, load_pairs(args.data, task, args.layout), task, device, args.max_side)
    record = {"model": args.model, "checkpoint": str(args.checkpoint), "data": args.data, "task": task.name,
              "convention": f"PSNR dB / SSIM on {result.color.upper()} (BasicSR semantics: uint8, "
                            f"crop_border {result.crop_border})", **result.to_dict()}
    if args.out:
        atomic_write_json(args.out, record)
    if args.json:
        emit(record, True)
    else:
        emit(result.per_image + [{"name": "MEAN", "psnr": result.psnr, "ssim": result.ssim,
                                  "input_psnr": result.input_psnr, "input_ssim": result.input_ssim}], False)
        print(record["convention"])
    return 0
