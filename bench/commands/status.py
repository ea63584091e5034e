"""``skd-bench status GRID...``: done / running / failed / pending per cell."""

from __future__ import annotations

import argparse
from collections import Counter

from bench.execute.runner import grid_status
from bench.store import STATUSES

from .output import emit
from .run import add_grid_args, load_grids


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show which cells of a grid are done, running, failed or pending")
    add_grid_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for grid in load_grids(args):
        rows = grid_status(grid, args.runs_dir)
        counts = Counter(r["status"] for r in rows)
        if not args.json:
            print(f"{grid.study}: " + ", ".join(f"{counts.get(s, 0)} {s}"
                                                for s in STATUSES))
        emit(rows, args.json)
    return 0
