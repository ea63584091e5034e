"""``skd-bench report GRID...``: tables, figures and pages of finished grids under ``results/``."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.report import build_report, write_index

from .output import emit
from .run import add_grid_args, load_grids

DEFAULT_OUT = Path("results")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write tables (Markdown, LaTeX, CSV), figures and pages of grids")
    add_grid_args(p)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default results/)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    pages = [{"grid": g.study, "page": str(build_report(g, args.runs_dir, args.out))} for g in load_grids(args)]
    pages.append({"grid": "(index)", "page": str(write_index(args.out))})
    emit(pages, args.json)
    return 0
