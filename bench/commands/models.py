"""``skd-bench models``: list the registered model presets with their parameter counts."""

from __future__ import annotations

import argparse

from bench.commands import COMMANDS
from skd_core.complexity.params import count_params
from skd_core.models import list_models

from .output import emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help=COMMANDS["models"][1])
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = [
        {"name": p.name, "role": p.role, "params": count_params(p.build()), "description": p.description}
        for p in list_models()
    ]
    emit(rows, args.json)
    return 0
