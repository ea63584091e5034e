"""``skd-bench throughput``: images/s, ms/image (median and IQR) and peak memory of model presets
by the protocol of :mod:`skd_core.complexity.throughput`, on CUDA or CPU (whichever is asked; a
missing GPU is an error, never a silent fallback).

With more than one model, the first is the reference: each row gives its speed-up (images/s over the
reference's, same batch) next to its MAC ratio (reference MACs / its MACs), both measured in this run.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench.commands import COMMANDS
from skd_core.complexity.env import DTYPES, check_dtype, input_shape, resolve_device
from skd_core.complexity.macs import COUNTER, count_macs
from skd_core.complexity.throughput import COMPILE_MODES, measure_throughput
from skd_core.models import build_model

from .argtypes import NON_NEGATIVE, POSITIVE, add_device
from .complexity import model_names
from .output import emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("throughput", help=COMMANDS["throughput"][1])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--models", help="comma-separated presets; the first is the reference for speed-ups")
    which.add_argument("--all", action="store_true", help="every registered preset")
    add_device(p)
    p.add_argument("--batch", type=POSITIVE, nargs="+", default=[1], metavar="B", help="batch size(s): a sweep")
    p.add_argument("--size", nargs=2, type=POSITIVE, default=(128, 128), metavar=("H", "W"),
                   help="input height and width in pixels (default 128 128)")
    p.add_argument("--dtype", choices=DTYPES, default="fp32",
                   help="fp32 (TF32 off), tf32 (CUDA only) or bf16 (autocast); default fp32")
    p.add_argument("--channels-last", action="store_true", help="model and input in channels_last")
    p.add_argument("--compile", nargs="?", const="default", choices=COMPILE_MODES, metavar="MODE",
                   help=f"torch.compile the model (mode: {', '.join(COMPILE_MODES)}; default 'default')")
    p.add_argument("--warmup", type=NON_NEGATIVE, default=3, help="untimed forward passes first (default 3)")
    p.add_argument("--repeats", type=POSITIVE, default=10, help="timed forward passes (default 10)")
    p.add_argument("--threads", type=POSITIVE, help="torch CPU threads (default: torch's current setting)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory pass")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def measure(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One record per batch size: the throughput fields plus the model's MACs per image."""
    model = build_model(name)
    shapes = [input_shape(model, batch, *args.size) for batch in args.batch]
    macs = count_macs(model, (1, *shapes[0][1:])).macs
    return [
        {"model": name, **measure_throughput(
            model, shape, device=args.device, dtype=args.dtype, channels_last=args.channels_last,
            compile_mode=args.compile, warmup=args.warmup, repeats=args.repeats, threads=args.threads,
            memory=not args.no_memory,
        ).to_record(), "macs_per_image": macs, "mac_counter": COUNTER}
        for shape in shapes
    ]


def add_ratios(records: list[dict[str, Any]]) -> None:
    """Speed-up and MAC ratio of each record against the first model's record at the same batch."""
    reference = {r["batch"]: r for r in records if r["model"] == records[0]["model"]}
    for r in records:
        ref = reference[r["batch"]]
        r["reference"] = ref["model"]
        r["speedup"] = r["images_per_s"] / ref["images_per_s"]
        r["mac_ratio"] = ref["macs_per_image"] / r["macs_per_image"]


def run(args: argparse.Namespace) -> int:
    names = model_names(args)
    args.device = str(resolve_device(args.device))  # "auto" named as what it measures on
    check_dtype(args.dtype, resolve_device(args.device))
    records = [rec for name in names for rec in measure(name, args)]
    if len(names) > 1:
        add_ratios(records)
    if args.json:
        emit(records, as_json=True)
        return 0
    first = records[0]
    print(f"device {first['device']} ({first['device_name']}), torch {first['torch_version']}, "
          f"CUDA {first['cuda_version'] or 'none'}, {first['threads']} threads, dtype {first['dtype']}, "
          f"channels_last {first['channels_last']}, compile {first['compile_mode'] or 'off'}, "
          f"input {args.size[0]}x{args.size[1]}, warm-up {first['warmup']}, {first['repeats']} timed runs "
          f"({first['timer']})")
    print(f"times: median and IQR per batch; MACs per image at 1x3x{args.size[0]}x{args.size[1]} ({COUNTER})")
    rows = []
    for r in records:
        row = {
            "model": r["model"], "batch": r["batch"], "median ms/batch": r["median_ms"], "IQR ms": r["iqr_ms"],
            "ms/image": r["ms_per_image"], "images/s": r["images_per_s"],
            "peak MiB": None if r["peak_memory_bytes"] is None else r["peak_memory_bytes"] / 2**20,
            "GMACs/image": r["macs_per_image"] / 1e9,
        }
        if "speedup" in r:
            row[f"speed-up vs {r['reference']}"] = r["speedup"]
            row[f"MAC ratio vs {r['reference']}"] = r["mac_ratio"]
        rows.append(row)
    emit(rows, as_json=False, floatfmt=".4g")
    if first["memory_method"]:
        print(f"peak memory: {first['memory_method']} (MiB = 2^20 bytes)")
    return 0
