"""``skd-bench report GRID...``: tables, figures and pages of finished grids under ``results/``."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands import COMMANDS
from bench.report import build_report, write_index
from bench.report.captions import CAPTIONS, DEFAULT_CAPTION

from .grids import add_grid_args, load_grids
from .output import emit

DEFAULT_OUT = Path("results")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help=COMMANDS["report"][1])
    add_grid_args(p)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default results/)")
    p.add_argument("--caption", choices=CAPTIONS, default=DEFAULT_CAPTION,
                   help="table captions: short (default; unit, seeds, device, dtype, tuning, where the rest is) or "
                        "full (every convention); the HTML page's Conventions section lists them all either way")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    pages = [{"grid": g.study, "page": str(build_report(g, args.runs_dir, args.out, args.caption))}
             for g in load_grids(args)]
    pages.append({"grid": "(index)", "page": str(write_index(args.out))})
    emit(pages, args.json)
    return 0
