"""Where the ``cpu`` profile's time goes, against the machine's own ceiling, measured in one run:
``python -m bench.perf.report --out results/perf.md``.

- Ceiling: the fp32 matmul rate, ``2 n^3`` FLOPs per ``n x n`` product (``torch.mm``, n = 1024),
  median of timed runs, with the thread count the measured code uses.
- Inference: teacher and student forward (eval, ``inference_mode``) at the profile's throughput
  size; FLOPs = 2 x fvcore MACs (convolutions, matrix and attention products; elementwise work
  not counted), so FLOP/s here is a lower bound of the work done.
- Training steps (distiller forward + backward + Adam step on one fixed batch of the profile's
  student shape): per method; SKD read against (teacher forward + scratch student step).
- Data: one training batch of each task's on-the-fly degradation, against the scratch step.
- Teacher replay (:mod:`bench.execute.replay`): every teacher-using method's step, and the teacher's
  forward, as a player replaying the fixed batch's entry that a recorder wrote, against the same
  computed; the recorder's own step (``output_kd``) with the writing.
- Loss balance: one :meth:`~skd_core.methods.Distiller.balance` call (a forward and one gradient
  per loss term) against the method's training step, and what the ``MONITOR_POINTS`` calls add to
  a cell of the profile's schedule.
- Variants tried: channels_last, and ``torch.compile`` (first call, i.e. compile time, reported
  separately from the steady state).

Every time is the median of round-robin (interleaved) repeats, so machine load hits all alike.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tabulate import tabulate

from bench.execute.provenance import git_info, versions
from bench.execute.replay import PLAYER, RECORDER, ReplaySpec, TeacherReplay
from bench.spec.profiles import Profile, get_profile
from skd_core.atomic import atomic_write_text
from skd_core.complexity.env import environment
from skd_core.complexity.macs import COUNTER, count_macs
from skd_core.complexity.train_step import StepCase, make_step
from skd_core.data import train_crops
from skd_core.methods import METHODS
from skd_core.models import build_model
from skd_core.train.config import TrainConfig
from skd_core.train.loop import MONITOR_POINTS, batch_at


def medians(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each callable, timed round-robin after ``warmup`` calls each."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def matmul_rate(n: int = 1024, repeats: int = 20) -> float:
    """Measured fp32 ``torch.mm`` rate in FLOP/s (2 n^3 per product)."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    return 2 * n**3 / medians({"mm": lambda: torch.mm(a, b)}, repeats)["mm"]


def _first_call(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(profile_name: str = "cpu", threads: int = 1, repeats: int = 9) -> dict:
    """All figures of the report, measured now with ``threads`` intra-op threads."""
    torch.set_num_threads(threads)
    profile = get_profile(profile_name)
    ceiling = matmul_rate()
    size = profile.throughput_size
    inference = []
    for name in (profile.teacher, profile.student):
        for batch in (1, 8):
            model = build_model(name).eval()
            shape = (batch, 3, *size)
            flops = count_macs(model, shape).flops
            x = torch.rand(shape)
            x_cl = x.contiguous(memory_format=torch.channels_last)
            model_cl = build_model(name).eval().to(memory_format=torch.channels_last)
            with torch.inference_mode():
                t = medians({"eager": lambda m=model, x=x: m(x), "channels_last": lambda m=model_cl, x=x_cl: m(x)},
                            repeats)
            inference.append({"model": name, "input": "x".join(map(str, shape)), "GFLOPs": flops / 1e9,
                              "ms": t["eager"] * 1e3, "GFLOP/s": flops / t["eager"] / 1e9,
                              "of matmul rate": flops / t["eager"] / ceiling,
                              "channels_last ms": t["channels_last"] * 1e3})
    cfg = profile.student_train
    teacher = build_model(profile.teacher).requires_grad_(False).eval()
    cases = {m: make_step(m, profile.student, teacher, cfg.batch, cfg.crop) for m in METHODS.names()}
    cases["skd (contrastive off)"] = make_step("skd", profile.student, teacher, cfg.batch, cfg.crop,
                                               {"contrastive": False})
    cases["skd (mca none)"] = make_step("skd", profile.student, teacher, cfg.batch, cfg.crop, {"mca_dims": "none"})
    fns: dict[str, Callable[[], object]] = {k: c.step for k, c in cases.items()}
    fns["teacher forward"] = cases["scratch"].teacher_forward
    data = {task: train_crops(profile.train_data, task, cfg.crop, 10**6, 0) for task in ("denoise25", "deblur",
                                                                                          "derain")}
    for task, crops in data.items():
        fns[f"data batch {task}"] = lambda c=crops: batch_at(c, 7, cfg.batch)
    for method in BALANCE_METHODS:  # what the loss-balance monitor costs (module doc)
        c = cases[method]
        lq, gt = torch.rand(cfg.batch, 3, cfg.crop, cfg.crop), torch.rand(cfg.batch, 3, cfg.crop, cfg.crop)
        fns[f"balance {method}"] = lambda c=c, lq=lq, gt=gt: c.distiller.balance(lq, gt)
    with tempfile.TemporaryDirectory() as folder:
        fns.update(_replayed(profile, cfg, teacher, Path(folder)))
        steps = medians(fns, repeats)
    student_flops = count_macs(build_model(profile.student), (cfg.batch, 3, cfg.crop, cfg.crop)).flops
    teacher_flops = count_macs(teacher, (cfg.batch, 3, cfg.crop, cfg.crop)).flops
    compiled = _compile_trial(profile, cfg, repeats)
    return {"threads": threads, "ceiling": ceiling, "inference": inference, "steps": steps,
            "student_step_gflops": 3 * student_flops / 1e9, "teacher_forward_gflops": teacher_flops / 1e9,
            "batch": cfg.batch, "crop": cfg.crop, "compiled": compiled, "profile": profile}


#: the method whose cell records in the replay rows (the first teacher-using method of kd_methods)
RECORDER_METHOD = "output_kd"


def _replayed(profile: Profile, cfg: TrainConfig, teacher: torch.nn.Module, folder: Path) -> dict[str, Callable]:
    """Steps with teacher replay on copies of ``teacher``: ``<method> (replayed)`` for every
    teacher-using method and ``teacher forward (replayed)``, replaying the entry a recorder wrote
    once; ``<RECORDER_METHOD> (recording)``, whose entry is removed before each call so that every
    call computes and writes. Every case's fixed batch is the same (seed 0), so one entry serves."""
    def case(method: str, role: str, where: Path) -> StepCase:
        c = make_step(method, profile.student, copy.deepcopy(teacher), cfg.batch, cfg.crop)
        TeacherReplay(c.distiller.teacher, ReplaySpec(where, role, "perf"))  # patched for the process's life
        return c

    case(RECORDER_METHOD, RECORDER, folder / "played").step()  # writes the batch's entry
    recorder = case(RECORDER_METHOD, RECORDER, folder / "recorded")

    def record() -> None:
        shutil.rmtree(folder / "recorded", ignore_errors=True)
        recorder.step()

    fns: dict[str, Callable[[], object]] = {f"{RECORDER_METHOD} (recording)": record}
    for method in (m for m in METHODS.names() if METHODS.get(m).needs_teacher):
        played = case(method, PLAYER, folder / "played")
        fns[f"{method} (replayed)"] = played.step
        if method == RECORDER_METHOD:
            fns["teacher forward (replayed)"] = played.teacher_forward
    return fns


#: methods whose loss-balance call is timed: the cheapest with a teacher, and SKD (most terms)
BALANCE_METHODS = ("output_kd", "skd")


def _compile_trial(profile: Profile, cfg: TrainConfig, repeats: int) -> dict[str, float]:
    """Scratch student step, eager vs ``torch.compile`` of the student (default mode)."""
    eager = make_step("scratch", profile.student, None, cfg.batch, cfg.crop)
    compiled = make_step("scratch", profile.student, None, cfg.batch, cfg.crop)
    compiled.distiller.student.compile()
    first = _first_call(compiled.step)
    t = medians({"eager": eager.step, "compiled": compiled.step}, repeats)
    return {"first_call_s": first, "eager_ms": t["eager"] * 1e3, "compiled_ms": t["compiled"] * 1e3}


def render(m: dict) -> str:
    """The Markdown page of :func:`measure`'s figures."""
    env = environment("cpu")
    ceiling = m["ceiling"]
    s = m["steps"]
    floor = s["teacher forward"] + s["scratch"]
    inf_rows = [[r["model"], r["input"], f"{r['GFLOPs']:.3f}", f"{r['ms']:.1f}", f"{r['GFLOP/s']:.2f}",
                 f"{r['of matmul rate']:.1%}", f"{r['channels_last ms']:.1f}"] for r in m["inference"]]
    step_flops = {"scratch": m["student_step_gflops"]}
    step_rows = [[k, f"{v * 1e3:.1f}", f"{v / s['scratch']:.2f}",
                  f"{step_flops[k] / v:.2f} ({step_flops[k] / v / (ceiling / 1e9):.1%})" if k in step_flops else ""]
                 for k, v in s.items() if not k.startswith(("data", "balance"))]
    data_rows = [[k.removeprefix("data batch "), f"{v * 1e3:.2f}", f"{v / s['scratch']:.1%}"]
                 for k, v in s.items() if k.startswith("data")]
    steps_per_cell = m["profile"].student_train.steps
    balance_rows = [[k, f"{s[f'balance {k}'] * 1e3:.1f}", f"{s[k] * 1e3:.1f}", f"{s[f'balance {k}'] / s[k]:.2f}",
                     f"{MONITOR_POINTS * s[f'balance {k}'] / (steps_per_cell * s[k]):.1%}"] for k in BALANCE_METHODS]
    c = m["compiled"]
    git = git_info()
    return "\n".join([
        "# Performance of the `cpu` profile on this machine", "",
        f"Measured in one run by `python -m bench.perf.report --out results/perf.md` on {env.device_name} "
        f"({env.device}, {m['threads']} intra-op thread(s), fp32), torch {versions().get('torch')}, "
        f"commit {git.get('commit', 'unknown')[:10]}{' (dirty)' if git.get('dirty') else ''}. "
        "Times are medians of interleaved repeats; FLOPs = 2 x MACs counted by "
        f"{COUNTER} (convolutions, matrix and attention products; elementwise, normalisation and softmax "
        "work is not counted, so FLOP/s is a lower bound).", "",
        "## Ceiling", "",
        f"fp32 `torch.mm` 1024x1024: **{ceiling / 1e9:.1f} GFLOP/s** with {m['threads']} thread(s).", "",
        "## Inference (eval, inference_mode)", "",
        tabulate(inf_rows, headers=["model", "input", "GFLOPs", "ms", "GFLOP/s", "of matmul rate",
                                    "channels_last ms"], tablefmt="github"), "",
        f"## Training step ({m['batch']} x 3 x {m['crop']} x {m['crop']}, forward + backward + Adam)", "",
        f"Teacher forward alone: {s['teacher forward'] * 1e3:.1f} ms ({m['teacher_forward_gflops']:.3f} GFLOPs). "
        f"**SKD step / (teacher forward + scratch student step) = {s['skd'] / floor:.2f}** "
        f"({s['skd'] * 1e3:.1f} ms / ({s['teacher forward'] * 1e3:.1f} + {s['scratch'] * 1e3:.1f}) ms). "
        "A student step's FLOPs are taken as 3 x its forward's (forward, and a backward of about twice it). "
        "Rows marked (replayed) run with teacher replay (`bench/execute/replay.py`): the teacher's blocks loaded from "
        f"the entry a recorder wrote for the batch; ({RECORDER_METHOD} recording) is the recorder's step, "
        "writing the entry.", "",
        tabulate(step_rows, headers=["step", "ms", "x scratch", "GFLOP/s (of matmul rate)"], tablefmt="github"), "",
        "## Data: one training batch, degraded on the fly", "",
        tabulate(data_rows, headers=["task", "ms per batch", "of a scratch step"], tablefmt="github"), "",
        "## Loss-balance monitor", "",
        f"One `Distiller.balance` call (forward, then one gradient per loss term) against one training "
        f"step; a cell calls it {MONITOR_POINTS} times over its {steps_per_cell} steps.", "",
        tabulate(balance_rows, headers=["method", "balance call ms", "step ms", "x step",
                                        f"added to a {steps_per_cell}-step cell's training"], tablefmt="github"), "",
        "## torch.compile (scratch student step, default mode)", "",
        f"First call (compilation): {c['first_call_s']:.1f} s; then {c['compiled_ms']:.1f} ms per step vs "
        f"{c['eager_ms']:.1f} ms eager.", "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/perf-measured.md"))
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (grid cells use 1 each)")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    atomic_write_text(args.out, render(measure(threads=args.threads, repeats=args.repeats)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
