"""The options every grid command shares (``run``, ``status``, ``report``, ``tune``): grid files,
``--profile``, ``--set`` overrides and ``--runs-dir``; loading the grids they name."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.spec.grid import Grid, load_grid
from bench.spec.overrides import parse_overrides

from .argtypes import folder

DEFAULT_RUNS = Path("runs")


def add_grid_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("grids", nargs="+", type=Path, help="grid spec files (ablations/*.yaml)")
    p.add_argument("--profile", default=None, help="replace the specs' profile (smoke, cpu, paper)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="profile override for every cell, e.g. student_train.steps=50")
    p.add_argument("--runs-dir", type=folder, default=DEFAULT_RUNS, help="record store (default runs/)")


def load_grids(args: argparse.Namespace) -> list[Grid]:
    overrides = parse_overrides(args.set)
    return [load_grid(path, args.profile, overrides) for path in args.grids]


