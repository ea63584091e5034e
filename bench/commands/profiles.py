"""``skd-bench profiles``: print the scale profiles (models, crops, batches, steps, learning rates)."""

from __future__ import annotations

import argparse

from bench.spec.profiles import PROFILES, get_profile

from .output import emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profiles", help="list the scale profiles, or show one in full")
    p.add_argument("name", nargs="?", help="a profile to show in full (all its settings)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.name:
        emit(get_profile(args.name).to_dict(), True)
        return 0
    rows = []
    for name in PROFILES.names():
        p = get_profile(name)
        rows.append({"profile": name, "teacher": p.teacher, "student": p.student,
                     "teacher steps x batch x crop": f"{p.teacher_train.steps} x {p.teacher_train.batch} x "
                                                     f"{p.teacher_train.crop}" + "".join(
                         f" ({task}: {cfg.get('steps', p.teacher_train.steps)} steps)"
                         for task, cfg in p.teacher_task_train.items()),
                     "student steps x batch x crop": f"{p.student_train.steps} x {p.student_train.batch} x "
                                                     f"{p.student_train.crop}",
                     "data": p.train_data or "(set train_data)", "description": p.description})
    emit(rows, args.json)
    return 0
