"""Machine-independent performance guards, run with the ordinary tests: exact params and FLOPs of
every preset, and ratios measured within one run (never an absolute time).

``tests/data/preset_complexity.json`` holds the expected counts; after an intended architecture
change, regenerate it with ``python tests/test_perf_guards.py --write`` and review the diff.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from bench.perf.report import medians
from skd_core.complexity.macs import torch_flop_count
from skd_core.complexity.memory import measure_peak
from skd_core.complexity.params import count_params
from skd_core.complexity.train_step import make_step
from skd_core.mca import spatial_attention
from skd_core.models import MODELS, build_model

GUARD_FILE = Path(__file__).parent / "data" / "preset_complexity.json"
SHAPE = (1, 3, 256, 256)
COUNTER = "torch.utils.flop_counter.FlopCounterMode on meta tensors (2 FLOPs per MAC)"
#: the suite's own presets, read at collection (other tests register throw-away ones later)
PRESETS = tuple(MODELS.names())


def preset_counts(name: str) -> dict[str, int]:
    model = build_model(name)
    return {"params": count_params(model), "flops": torch_flop_count(model, SHAPE)}


def _expected() -> dict:
    return json.loads(GUARD_FILE.read_text())


def test_guard_file_covers_every_preset_at_its_stated_shape() -> None:
    guard = _expected()
    assert guard["input_shape"] == list(SHAPE) and guard["counter"] == COUNTER
    assert sorted(guard["presets"]) == sorted(PRESETS), (
        "presets changed: regenerate with python tests/test_perf_guards.py --write")


@pytest.mark.parametrize("name", PRESETS)
def test_preset_params_and_flops_are_exact(name: str) -> None:
    assert preset_counts(name) == _expected()["presets"][name]


def test_skd_step_against_student_step_plus_teacher_forward() -> None:
    """SKD runs the teacher once on the input (KD features and the contrastive negative), the
    teacher's encoder on the student and teacher outputs (anchor with backward, positive), and
    the adapters and MCA. Measured 2.3x (student step + teacher forward) on an idle 2-core machine
    (1 and 2 threads alike); the bound 3.2 catches a gross regression (the teacher run with
    gradients, an N x N spatial map at every tap) without flaking under moderate load."""
    teacher = build_model("teacher-cpu").requires_grad_(False).eval()
    skd = make_step("skd", "student-cpu", teacher, batch=8, crop=32)
    scratch = make_step("scratch", "student-cpu", teacher, batch=8, crop=32)
    t = medians({"skd": skd.step, "scratch": scratch.step, "teacher": scratch.teacher_forward}, repeats=7)
    ratio = t["skd"] / (t["scratch"] + t["teacher"])
    assert 1.0 < ratio < 3.2, t


def _spatial_peak(side: int, impl: str) -> int:
    student = torch.randn(1, 16, side, side, requires_grad=True)
    teacher = torch.randn(1, 16, side, side)
    peak = measure_peak(lambda: spatial_attention(student, teacher, impl=impl).square().mean().backward(),
                        torch.device("cpu"), live=[student, teacher])
    return peak.peak_bytes - peak.start_bytes


def test_spatial_mca_memory_grows_linearly_with_tokens() -> None:
    """4x the tokens: ~4x the peak memory through SDPA; the explicit N x N product shows what a
    quadratic path looks like (~16x), so the measurement can tell the two apart."""
    sdpa = _spatial_peak(64, "sdpa") / _spatial_peak(32, "sdpa")
    explicit = _spatial_peak(64, "matmul") / _spatial_peak(32, "matmul")
    assert sdpa < 6 < 10 < explicit, (sdpa, explicit)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GUARD_FILE.write_text(json.dumps({"input_shape": list(SHAPE), "counter": COUNTER,
                                      "presets": {n: preset_counts(n) for n in PRESETS}}, indent=1) + "\n")
    print(f"wrote {GUARD_FILE}")
