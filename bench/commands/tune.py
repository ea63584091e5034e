"""``skd-bench tune SPEC``: equal-budget tuning of the methods' options on the validation split
(one seeded Optuna TPE study per method; resumable), then the tuned-options file and the history."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.commands import COMMANDS
from bench.execute.executors import EXECUTORS
from bench.spec.tuned import tuned_path, write_tuned
from bench.tune.results import history_path, tuned_entries, write_history
from bench.tune.search import search
from bench.tune.spec import load_spec

from .argtypes import POSITIVE, add_device, folder, job_device
from .grids import DEFAULT_RUNS
from .output import emit
from .report import DEFAULT_OUT


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help=COMMANDS["tune"][1])
    p.add_argument("spec", type=Path, help="tuning spec (ablations/tuning/*.yaml)")
    p.add_argument("--profile", default=None, help="replace the spec's profile (smoke, cpu, paper)")
    p.add_argument("--trials", type=POSITIVE, default=None, help="replace the spec's trials per method")
    p.add_argument("--runs-dir", type=folder, default=DEFAULT_RUNS,
                   help="run store; the search's storage is <runs>/tuning/<name>.db (default runs/)")
    p.add_argument("--executor", choices=EXECUTORS, default="local")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    p.add_argument("--workers", type=POSITIVE, default=1, help="trials run at once (CPU threads are split among them)")
    add_device(p)
    p.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                   help="write the best options to <tuned-dir>/<profile>.yaml (default)")
    p.add_argument("--tuned-dir", type=folder, default=None,
                   help="where to write the tuned-options file (default <runs-dir>/tuned); the profiles read "
                        "bench/tuned/<profile>.yaml: pass --tuned-dir bench/tuned to regenerate that file")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="results folder for tuning/<name>_trials.csv (default results/)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = job_device(args.device, args.executor)
    spec = load_spec(args.spec, args.profile, args.trials)
    log = (lambda line: None) if args.no_progress else (
        lambda line: print(f"tune {spec.name}: {line}", file=sys.stderr, flush=True))
    log(f"profile {spec.profile.name}, task {spec.task}, {spec.trials} trials per method on the {spec.split} split, "
        f"methods {', '.join(spec.space)}")
    result = search(spec, args.runs_dir, executor=args.executor, workers=args.workers, device=device,
                    address=args.address, log=log)
    history = write_history(history_path(spec, args.out), result.history)
    written = None
    if args.write:
        written = tuned_path(spec.profile.name, args.tuned_dir or args.runs_dir / "tuned")
        write_tuned(written, *tuned_entries(spec, result))
    log(f"history {history}" + (f"; tuned options {written}" if written else "; tuned options not written"))
    emit([{"method": m, "trials": spec.trials, "best_val_psnr_dB": r.best.value, "best_trial": r.best.number,
           "options": r.best.params, "cell": r.best.cell} for m, r in result.results.items()], args.json)
    return 0
