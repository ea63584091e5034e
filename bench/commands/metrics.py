"""``skd-bench metrics RESTORED REFERENCE``: PSNR (dB) and SSIM of two 8-bit image files with
BasicSR/MATLAB semantics (:mod:`skd_core.metrics`): RGB by default, BT.601 limited-range Y with
``--y`` (the deraining convention)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands import COMMANDS
from skd_core.metrics import psnr_ssim, read_pair

from .argtypes import NON_NEGATIVE
from .output import emit

CONVENTION = "BasicSR calculate_psnr/calculate_ssim: uint8, float64, peak 255, SSIM 11-tap Gaussian sigma 1.5"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("metrics", help=COMMANDS["metrics"][1])
    p.add_argument("restored", type=Path, help="restored image file (8-bit PNG, JPEG, ...)")
    p.add_argument("reference", type=Path, help="ground-truth image file of the same size")
    p.add_argument("--y", action="store_true", help="score BT.601 limited-range Y (deraining), not RGB")
    p.add_argument("--crop-border", type=NON_NEGATIVE, default=0, metavar="N", help="pixels cropped from each side")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    restored, reference = read_pair(args.restored, args.reference)
    color = "y" if args.y else "rgb"
    scores = psnr_ssim(restored, reference, color=color, crop_border=args.crop_border)
    size = f"{reference.shape[1]}x{reference.shape[0]}"
    record = {**scores, "psnr_unit": "dB", "color": color, "crop_border": args.crop_border, "size_wxh": size,
              "convention": CONVENTION}
    emit(record, args.json, floatfmt=".6g")
    return 0
