"""``skd-bench ship-teachers``: copy finished teachers from a runs folder into a teachers folder:
``./teachers/`` by default, the repository's ``results/teachers/`` (where runs look for them) with
``--out results/teachers``."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bench.commands import COMMANDS
from bench.execute.cells import teacher_id
from bench.execute.shipped import ship
from bench.spec.profiles import get_profile
from bench.store import RunStore

from .argtypes import NON_NEGATIVE, folder
from .output import emit

#: where teachers are copied without --out: the current directory, never the installed package
DEFAULT_OUT = Path("teachers")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ship-teachers", help=COMMANDS["ship-teachers"][1])
    p.add_argument("--profile", default="cpu", help="scale profile (default cpu)")
    p.add_argument("--tasks", nargs="+", default=["derain", "deblur", "denoise25"], help="tasks (default: all three)")
    p.add_argument("--teacher-seed", type=NON_NEGATIVE, default=0, help="teacher seed (default 0)")
    p.add_argument("--runs-dir", type=folder, default=Path("runs"), help="where the teachers were trained")
    p.add_argument("--out", type=folder, default=DEFAULT_OUT,
                   help=f"destination (default ./{DEFAULT_OUT}/; runs use those in results/teachers/: pass "
                        "--out results/teachers from the repository root to update them)")
    p.add_argument("--force", action="store_true", help="replace a shipped teacher of another id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    profile = get_profile(args.profile)
    store = RunStore(args.runs_dir)
    command = "skd-bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    rows = []
    for task in args.tasks:
        tid = teacher_id(profile, task, args.teacher_seed)
        dest = ship(store, tid, profile.name, task, command, args.out, args.force)
        rows.append({"task": task, "teacher": tid, "shipped_to": str(dest)})
    emit(rows, args.json)
    return 0
