"""``skd-bench train``: train a teacher, a scratch student or a distilled student of a profile."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.execute.cells import StudentJob
from bench.execute.students import run_student
from bench.execute.teachers import ensure_teacher
from bench.spec.overrides import parse_overrides
from bench.spec.plugins import load_plugins, resolve
from bench.spec.profiles import get_profile
from bench.store import RunStore
from skd_core.complexity.env import resolve_device

from .argtypes import NON_NEGATIVE, folder
from .output import emit

DEFAULT_RUNS = Path("runs")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a teacher or a student (scratch or distilled) and score it")
    p.add_argument("--role", choices=("teacher", "student"), default="student")
    p.add_argument("--method", default="skd", help="distillation method for --role student (default skd)")
    p.add_argument("--task", default="denoise25", help="restoration task (default denoise25)")
    p.add_argument("--profile", default="cpu", help="scale profile: smoke, cpu (default) or paper")
    p.add_argument("--student", default=None, help="student preset (default: the profile's)")
    p.add_argument("--seed", type=NON_NEGATIVE, default=0, help="student seed (default 0)")
    p.add_argument("--teacher-seed", type=NON_NEGATIVE, default=0, help="teacher seed (default 0)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="distillation option, e.g. mca_dims=channel (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="profile override, e.g. student_train.steps=100 or teacher_checkpoint=net_g.pth")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE.py|MODULE",
                   help="import this file or module first (it may register models and methods; repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.add_argument("--runs-dir", type=folder, default=DEFAULT_RUNS, help="where runs are stored (default runs/)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--json", action="store_true", help="print the whole record as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    plugins = tuple(resolve(p) for p in args.plugin)
    load_plugins(plugins)
    profile = get_profile(args.profile).override(parse_overrides(args.set), where="--set")
    device = resolve_device(args.device)
    store = RunStore(args.runs_dir)
    if args.role == "teacher":
        _, record = ensure_teacher(profile, args.task, args.teacher_seed, store, device, resume=args.resume)
    else:
        job = StudentJob.create(profile, args.task, args.method, parse_overrides(args.option), args.student,
                                args.seed, args.teacher_seed, plugins=plugins)
        record = run_student(job, store, device, resume=args.resume)
    if args.json:
        emit(record, True)
        return 0
    m = record.get("metrics", {})
    emit({"role": args.role, "model": record.get("model"), "task": args.task, "id": record["id"],
          "psnr_dB": m.get("psnr"), "ssim": m.get("ssim"), "input_psnr_dB": m.get("input_psnr"),
          "color": m.get("color"), "train_s": record.get("training", {}).get("seconds"),
          "device": str(device)}, False)
    return 0
