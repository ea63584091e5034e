"""``skd-bench methods [NAME]``: the registered distillation methods (built-in and plugins) and
their options: type, default, range or choices, and help text."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from typing import Any

from bench.commands import COMMANDS
from bench.spec.plugins import load_plugins, resolve
from skd_core.methods import METHODS, MethodSpec

from .output import emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("methods", help=COMMANDS["methods"][1])
    p.add_argument("name", nargs="?", help="a method to show with every option in full")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE.py|MODULE",
                   help="import this file or module first (it may register methods; repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def option_rows(spec: MethodSpec) -> list[dict[str, Any]]:
    """One row per option of ``spec``: name, declared type, default, allowed values, help."""
    rows = []
    for f in dataclasses.fields(spec.options_class):
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        rows.append({"option": f.name, "type": kind, "default": getattr(spec.options_class(), f.name),
                     "allowed": allowed(kind, f.metadata), "help": f.metadata.get("help", "")})
    return rows


def allowed(kind: str, metadata: Mapping[str, Any]) -> str:
    """The values an option of type ``kind`` accepts, in words (the checks of ``skd_core.methods.options``)."""
    choices = metadata.get("choices")
    named = ("one of " + ", ".join(map(str, choices() if callable(choices) else choices))) if choices else ""
    numeric = any(t in kind.replace(" ", "").split("|") for t in ("float", "int"))
    bound = ("> 0" if metadata.get("positive") else ">= 0") if numeric and "tuple" not in kind else ""
    return " or ".join(part for part in (f"a number {bound}" if bound and named else bound, named) if part)


def run(args: argparse.Namespace) -> int:
    load_plugins(tuple(resolve(p) for p in args.plugin))
    if args.name:
        spec = METHODS.get(args.name)
        if not args.json:
            print(f"{spec.name} ({spec.module}; {'needs a teacher' if spec.needs_teacher else 'no teacher'})")
        emit(option_rows(spec), args.json)
        return 0
    rows = [{"method": name, "teacher": METHODS.get(name).needs_teacher, "module": METHODS.get(name).module,
             "options": ", ".join(f"{r['option']}={r['default']}" for r in option_rows(METHODS.get(name))) or "-"}
            for name in METHODS.names()]
    emit(rows, args.json)
    return 0
