"""``skd-bench perf``: benchmarks of the working tree vs a baseline on this machine; exit 1 on a
median regression beyond ``--threshold`` (see :mod:`bench.perf.gate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands import COMMANDS
from bench.perf.gate import perf
from skd_core.errors import ConfigError

from .output import emit


def threshold(text: str) -> float:
    """``"10"`` or ``"10%"`` -> 0.10 (percent, > 0)."""
    try:
        value = float(text.rstrip("%")) / 100
    except ValueError:
        raise argparse.ArgumentTypeError(f"threshold must be a percentage like 10 or 10%, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"threshold must be > 0, got {text!r}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("perf", help=COMMANDS["perf"][1])
    p.add_argument("--baseline", default="HEAD",
                   help="git ref (its merge-base with HEAD is measured now, in a temporary worktree) or a "
                        "stored run FILE.json from --save (default HEAD)")
    p.add_argument("--threshold", type=threshold, default=0.10,
                   help="fail when a median is slower than the baseline's by more than this percentage (default 10)")
    p.add_argument("--select", default=None, help="pytest -k expression choosing benchmarks (default: all)")
    p.add_argument("--out", type=Path, default=Path(".perf"),
                   help="folder for current.json, baseline.json, compare.md/.json (default .perf/)")
    p.add_argument("--save", type=Path, default=None, help="also copy the current run here, to use as --baseline later")
    p.add_argument("--repo", type=Path, default=Path("."), help="the git checkout to benchmark (default .)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    repo = args.repo.resolve()
    if not (repo / ".git").exists():
        raise ConfigError(f"--repo {repo} is not a git checkout (skd-bench perf measures git trees)")
    result = perf(repo, args.baseline, args.threshold, args.out.resolve(), args.select, args.save)
    emit(result.rows.to_dict(orient="records"), args.json)
    slower = result.regressions
    summary = (f"skd-bench perf: {len(slower)} of {len(result.rows)} benchmarks slower than the baseline by more "
               f"than {args.threshold:.0%}: {', '.join(slower['name'])}" if len(slower)
               else f"skd-bench perf: no regression beyond {args.threshold:.0%} ({len(result.rows)} benchmarks)")
    print(f"{summary}\nfull comparison: {args.out / 'compare.md'}")
    return 1 if len(slower) else 0
