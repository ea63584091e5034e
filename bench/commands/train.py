"""``skd-bench train``: train a teacher, a scratch student or a distilled student of a profile.

A run that finished (a ``done`` record in the run store, as ``run`` skips finished cells) is not
trained again unless ``--force``; either way the command prints where the weights are. ``--opt
FILE.yml`` reads a BasicSR/Restormer options file into the profile (:mod:`bench.spec.basicsr`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.commands import COMMANDS
from bench.execute.cells import StudentJob, teacher_id
from bench.execute.students import run_student
from bench.execute.teachers import ensure_teacher
from bench.spec.basicsr import UnsupportedOptionsError, read_options, with_layernorm_hint
from bench.spec.overrides import parse_overrides
from bench.spec.plugins import load_plugins, resolve
from bench.spec.profiles import Profile, get_profile
from bench.store import RECORD, RunStore
from skd_core.errors import ConfigError
from skd_core.models import CheckpointError

from .argtypes import NON_NEGATIVE, add_device, folder, job_device
from .output import emit

DEFAULT_RUNS = Path("runs")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help=COMMANDS["train"][1])
    p.add_argument("--role", choices=("teacher", "student"), default="student")
    p.add_argument("--method", default="skd", help="distillation method for --role student (default skd)")
    p.add_argument("--task", default="denoise25", help="restoration task (default denoise25)")
    p.add_argument("--profile", default="cpu", help="scale profile: smoke, cpu (default) or paper")
    p.add_argument("--student", default=None, help="student preset (default: the profile's)")
    p.add_argument("--seed", type=NON_NEGATIVE, default=0, help="student seed (default 0)")
    p.add_argument("--teacher-seed", type=NON_NEGATIVE, default=None,
                   help="teacher seed (default: the --opt file's manual_seed, else 0)")
    p.add_argument("--opt", type=Path, default=None, metavar="FILE.yml",
                   help="BasicSR/Restormer options file: its network_g is the teacher; its datasets, train schedule, "
                        "val_freq, pretrain_network_g and manual_seed replace the profile's (--set and --teacher-seed "
                        "replace them in turn); a key this suite cannot honour is refused")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="distillation option, e.g. mca_dims=channel (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="profile override, e.g. student_train.steps=100 or teacher_checkpoint=net_g.pth")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE.py|MODULE",
                   help="import this file or module first (it may register models and methods; repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.add_argument("--force", action="store_true",
                   help="redo a finished run (default: skip it; a teacher shipped with the repository is copied "
                        "again, not retrained)")
    p.add_argument("--runs-dir", type=folder, default=DEFAULT_RUNS, help="where runs are stored (default runs/)")
    add_device(p)
    p.add_argument("--json", action="store_true", help="print the whole record as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    plugins = tuple(resolve(p) for p in args.plugin)
    load_plugins(plugins)
    profile, teacher_seed = get_profile(args.profile), args.teacher_seed
    if args.opt:
        try:
            options = read_options(args.opt, args.task)
        except UnsupportedOptionsError as exc:
            for line in exc.lines:
                print(f"skd-bench train: error: --opt {exc.path}: {line}", file=sys.stderr)
            return 2
        if options.ignored:
            print(f"skd-bench train: --opt {args.opt}: ignored (bookkeeping, no effect here): "
                  f"{', '.join(options.ignored)}", file=sys.stderr)
        profile = profile.override(options.profile_overrides(), where=f"--opt {args.opt}")
        teacher_seed = options.seed if teacher_seed is None else teacher_seed
    profile = profile.override(parse_overrides(args.set), where="--set")
    teacher_seed = teacher_seed or 0
    device = job_device(args.device)
    store = RunStore(args.runs_dir)
    # notes go where the output is not JSON, so that --json prints JSON only
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    if args.role == "teacher":
        folder = store.teacher_dir(teacher_id(profile, args.task, teacher_seed))
    else:
        job = StudentJob.create(profile, args.task, args.method, parse_overrides(args.option), args.student,
                                args.seed, teacher_seed, plugins=plugins)
        folder = store.cell_dir(job.id())
    status, record, _ = store.status(folder)
    if status == "done" and not args.force:
        say(f"skipped: this {args.role} finished already, record {folder / RECORD} (--force trains it again)")
    else:
        if args.force:
            store.clear(folder)
        try:
            if args.role == "teacher":
                record = ensure_teacher(profile, args.task, teacher_seed, store, device, resume=args.resume)[1]
            else:
                record = _train_student(job, store, folder, device, args.resume)
        except CheckpointError as exc:
            if not profile.teacher_checkpoint:
                raise
            raise with_layernorm_hint(exc, profile.teacher, profile.teacher_checkpoint) from None
    if args.json:
        emit(record, True)
    else:
        m = record.get("metrics", {})
        emit({"role": args.role, "model": record.get("model"), "task": args.task, "id": record["id"],
              "psnr_dB": m.get("psnr"), "ssim": m.get("ssim"), "input_psnr_dB": m.get("input_psnr"),
              "color": m.get("color"), "train_s": record.get("training", {}).get("seconds"),
              "device": device}, False)
    say(f"weights: {_weights(record, profile, store, folder)}")
    return 0


def _train_student(job: StudentJob, store: RunStore, folder: Path, device: str, resume: bool) -> dict[str, Any]:
    """``run_student`` holding the cell's lock, as the grid runner does (so the two never train it at once)."""
    lock = store.lock(folder)
    if not lock.try_acquire():
        raise ConfigError(f"cell {folder} is being trained by another process (lock {lock.path})")
    try:
        return run_student(job, store, device, resume=resume)
    finally:
        lock.release()


def _weights(record: dict[str, Any], profile: Profile, store: RunStore, folder: Path) -> Path:
    """The weights file of a run: the checkpoint a checkpoint teacher was scored from, else the store's."""
    if record.get("kind") == "teacher" and record.get("source") == "checkpoint" and profile.teacher_checkpoint:
        return Path(profile.teacher_checkpoint)
    return store.weights(folder)
