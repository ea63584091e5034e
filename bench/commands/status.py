"""``skd-bench status GRID...``: done / running / failed / pending per cell, and the machine
identities of the finished cells' records (the report's caption line)."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from bench.commands import COMMANDS
from bench.execute.runner import grid_status
from bench.report.records import identity_groups, identity_line, record_identity
from bench.spec.grid import Grid
from bench.store import STATUSES, RunStore

from .grids import add_grid_args, load_grids
from .output import emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help=COMMANDS["status"][1])
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
            if line := identities(grid, args.runs_dir, rows):
                print(line)
        emit(rows, args.json)
    return 0


def identities(grid: Grid, runs_dir: Path, rows: list[dict]) -> str:
    """The machine identity line (:func:`bench.report.records.identity_line`) of the finished cells
    among ``rows`` (:func:`bench.execute.runner.grid_status`); empty when none has finished."""
    store = RunStore(runs_dir)
    return identity_line(identity_groups(record_identity(store.status(store.cell_dir(r["id"]))[1])
                                         for r in rows if r["status"] == "done"))
