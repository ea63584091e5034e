"""``skd-bench run GRID...``: run ablation grids (teachers first, finished cells skipped)."""

from __future__ import annotations

import argparse

from bench.commands import COMMANDS
from bench.execute.executors import EXECUTORS
from bench.execute.runner import run_grids

from .argtypes import POSITIVE, add_device, job_device
from .grids import add_grid_args, load_grids
from .output import emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help=COMMANDS["run"][1])
    add_grid_args(p)
    p.add_argument("--executor", choices=EXECUTORS, default="local")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    p.add_argument("--workers", type=POSITIVE, default=1, help="parallel cells (CPU threads are split among them)")
    add_device(p)
    p.add_argument("--force", action="store_true", help="rerun finished cells")
    p.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                   help="run only matching cells (label, task, seed, method, student, id or an option)")
    p.add_argument("--no-replay", action="store_true",
                   help="every distilled cell runs its teacher itself (default: cells that share a teacher and "
                        "batches replay its forward from one of them; exact, see bench/execute/replay.py)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # a GPU missing here is one line, not a failed cell each; Ray workers may have GPUs that this node lacks
    device = job_device(args.device, args.executor)
    grids = load_grids(args)
    summary = run_grids(grids, args.runs_dir, executor=args.executor, workers=args.workers, device=device,
                        force=args.force, only=args.only, progress=not args.no_progress, address=args.address,
                        replay=not args.no_replay)
    emit({"grids": ", ".join(g.study for g in grids), "done": summary.done, "failed": summary.failed,
          "already_done": summary.skipped, "running_elsewhere": summary.busy,
          "wall_s": round(summary.seconds, 1), "executor": args.executor, "workers": args.workers,
          "device": device}, args.json)
    return 1 if summary.failed else 0
