"""``skd-bench`` (also ``python -m bench``): one sub-command per module in :mod:`bench.commands`.

Every command prints a readable table, or JSON with ``--json``. A user-facing error
(:class:`skd_core.errors.SkdError`) is printed as one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from skd_core.errors import SkdError

#: sub-command modules, each with ``add_parser(subparsers)`` that sets ``func(args) -> int``
COMMANDS = ("models", "profiles", "complexity", "throughput", "metrics", "train", "eval", "run", "status", "report",
            "perf")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skd-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"bench.commands.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SkdError as exc:
        print(f"skd-bench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"skd-bench {args.command}: interrupted", file=sys.stderr)
        return 130
