"""``skd-bench complexity``: parameters, MACs, conv-only MACs and FLOPs of model presets at a stated
input size, counted by fvcore with our handles (:mod:`skd_core.complexity.macs`).

``--markdown PATH`` also writes the table as Markdown (``results/tables/complexity.md`` is made by
``skd-bench complexity --all --size 256 256 --cross-check --markdown results/tables/complexity.md``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate

from bench.commands import COMMANDS
from skd_core.complexity.env import input_shape
from skd_core.complexity.macs import COUNTER, TORCH_COUNTER, count_macs
from skd_core.complexity.params import count_params
from skd_core.errors import ConfigError
from skd_core.models import build_model, list_models
from skd_core.models.restormer import ATTENTION_IMPLS

from .argtypes import POSITIVE
from .output import emit

UNITS = ("MACs = multiply-accumulates of convolutions and matrix products (attention products included); "
         "conv-only MACs = convolutions alone, the figure published tables call FLOPs; FLOPs = 2 x MACs")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("complexity", help=COMMANDS["complexity"][1])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--models", help="comma-separated model presets (see `skd-bench models`)")
    which.add_argument("--all", action="store_true", help="every registered preset")
    p.add_argument("--size", nargs=2, type=POSITIVE, default=(256, 256), metavar=("H", "W"),
                   help="input height and width in pixels (default 256 256)")
    p.add_argument("--batch", type=POSITIVE, default=1, help="batch size of the counted input (default 1)")
    p.add_argument("--attention-impl", choices=ATTENTION_IMPLS,
                   help="override the Restormer attention implementation (MACs do not change)")
    p.add_argument("--by-module", type=POSITIVE, metavar="DEPTH",
                   help="also give MACs per module down to this depth of the dotted path (JSON only)")
    p.add_argument("--cross-check", action="store_true",
                   help="also count FLOPs with torch.utils.flop_counter on meta tensors")
    p.add_argument("--markdown", type=Path, metavar="PATH", help="also write the table as Markdown to PATH")
    p.add_argument("--json", action="store_true", help="print JSON (raw integer counts)")
    p.set_defaults(func=run)


def model_names(args: argparse.Namespace) -> list[str]:
    """The presets named by ``--models a,b`` or ``--all``."""
    if args.all:
        return [p.name for p in list_models()]
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if not names:
        raise ConfigError("--models needs at least one preset name")
    return names


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One record: the preset's params and :class:`~skd_core.complexity.macs.MacReport` fields."""
    overrides = {"attention_impl": args.attention_impl} if args.attention_impl else {}
    model = build_model(name, **overrides)
    shape = input_shape(model, args.batch, *args.size)
    report = count_macs(model, shape, by_module_depth=args.by_module, cross_check=args.cross_check)
    record = {"model": name, "params": count_params(model), **report.to_record()}
    if args.attention_impl:
        record["attention_impl"] = args.attention_impl
    if record["by_module"] is None:
        del record["by_module"]
    if record["torch_flops"] is None:
        del record["torch_flops"], record["torch_counter"]
    return record


def table_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Readable rows: exact params, MACs and FLOPs in G (10^9), to be printed with 2 decimals."""
    rows = []
    for r in records:
        row = {
            "model": r["model"], "params": r["params"], "conv-only MACs (G)": r["conv_macs"] / 1e9,
            "MACs (G)": r["macs"] / 1e9, "FLOPs (G)": r["flops"] / 1e9,
        }
        if "torch_flops" in r:
            row["FlopCounterMode FLOPs (G)"] = r["torch_flops"] / 1e9
        row["uncounted ops"] = ", ".join(f"{k} x{v}" for k, v in r["uncounted_ops"].items()) or "none"
        rows.append(row)
    return rows


def header(records: list[dict[str, Any]], cross_check: bool) -> list[str]:
    shape = "x".join(map(str, records[0]["input_shape"]))
    lines = [f"input {shape} (B x C x H x W); {UNITS}", f"counter: {COUNTER}"]
    if cross_check:
        lines.append(f"cross-check: {TORCH_COUNTER} (FLOPs = 2/MAC, convolutions and matrix products)")
    return lines


def write_markdown(path: Path, records: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Write the table with a header naming unit, counter and input size (atomically)."""
    shape = "x".join(map(str, records[0]["input_shape"]))
    command = " ".join([
        "skd-bench complexity", "--all" if args.all else f"--models {args.models}",
        f"--size {args.size[0]} {args.size[1]}", f"--batch {args.batch}",
        *(["--cross-check"] if args.cross_check else []), f"--markdown {args.markdown}",
    ])
    lines = [
        f"# Model complexity at {shape}",
        "",
        f"Generated by `{command}` (torch {torch.__version__}).",
        "",
        *[f"- {line}" for line in header(records, args.cross_check)],
        "- params = `sum(p.numel())`; elementwise, normalisation and softmax work is not in MACs "
        "(see `--json`, field `element_ops`); uncounted ops are listed, never silently zero.",
        "",
        tabulate(table_rows(records), headers="keys", tablefmt="github", floatfmt=".2f"),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    records = [measure(name, args) for name in model_names(args)]
    if args.markdown:
        write_markdown(args.markdown, records, args)
    if args.json:
        emit(records, as_json=True)
        return 0
    print("\n".join(header(records, args.cross_check)))
    emit(table_rows(records), as_json=False, floatfmt=".2f")
    return 0
