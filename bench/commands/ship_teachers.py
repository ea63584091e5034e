"""``skd-bench ship-teachers``: copy finished teachers from a runs folder into the repository."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bench.execute.cells import teacher_id
from bench.execute.shipped import SHIPPED, ship
from bench.spec.profiles import get_profile
from bench.store import RunStore

from .argtypes import NON_NEGATIVE, folder
from .output import emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ship-teachers", help="copy finished teachers of a profile into results/teachers/ "
                                             "(used by later runs only while config, code and data match)")
    p.add_argument("--profile", default="cpu", help="scale profile (default cpu)")
    p.add_argument("--tasks", nargs="+", default=["derain", "deblur", "denoise25"], help="tasks (default: all three)")
    p.add_argument("--teacher-seed", type=NON_NEGATIVE, default=0, help="teacher seed (default 0)")
    p.add_argument("--runs-dir", type=folder, default=Path("runs"), help="where the teachers were trained")
    p.add_argument("--out", type=Path, default=SHIPPED, help=f"destination (default {SHIPPED})")
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
