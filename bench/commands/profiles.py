"""``skd-bench profiles``: print the scale profiles (models, crops, batches, steps, learning rates)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from bench.commands import COMMANDS
from bench.spec.profiles import get_profile, profile_names

from .output import emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profiles", help=COMMANDS["profiles"][1])
    p.add_argument("name", nargs="?", help="a profile to show in full (all its settings)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def dotted(settings: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``settings`` flattened to ``(dotted.key, value)`` pairs, the names ``--set`` takes."""
    pairs: list[tuple[str, Any]] = []
    for key, value in settings.items():
        if isinstance(value, Mapping) and value:
            pairs += dotted(value, f"{prefix}{key}.")
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


def run(args: argparse.Namespace) -> int:
    if args.name:
        settings = get_profile(args.name).to_dict()
        emit(settings if args.json else [{"setting": k, "value": v} for k, v in dotted(settings)], args.json)
        return 0
    rows = []
    for name in profile_names():
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
