"""pytest-benchmark: one training step per distillation method at the ``cpu`` profile's student
shapes (``student-cpu`` distilled from ``teacher-cpu``, batch 8 of 32x32 crops), plus the teacher
forward alone: an SKD step is read against (teacher forward + scratch step).

A step is distiller forward + backward + Adam step on a fixed batch (no data loading): see
:mod:`skd_core.complexity.train_step`. ``extra_info`` carries the student's MACs per image
(unit and counter), params, adapter params, shapes, dtype, threads and device.
"""

from __future__ import annotations

import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture

from bench.spec.profiles import get_profile
from skd_core.complexity.env import environment
from skd_core.complexity.macs import COUNTER, count_macs
from skd_core.complexity.train_step import make_step
from skd_core.methods import METHODS
from skd_core.models import build_model

PROFILE = get_profile("cpu")
BATCH, CROP = PROFILE.student_train.batch, PROFILE.student_train.crop
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ROUNDS = 10


@pytest.fixture(scope="module")
def teacher() -> torch.nn.Module:
    return build_model(PROFILE.teacher).to(DEVICE).requires_grad_(False).eval()


def _info(benchmark: BenchmarkFixture, **fields: object) -> None:
    env = environment(DEVICE)
    benchmark.group = f"train step {BATCH}x3x{CROP}x{CROP} {DEVICE}"
    benchmark.extra_info.update(
        **fields, input_shape=[BATCH, 3, CROP, CROP], dtype="fp32", threads=env.threads, device=env.device,
        device_name=env.device_name, torch_version=env.torch_version, cuda_version=env.cuda_version,
        unit="seconds per step", counter=COUNTER,
    )


def _macs(benchmark: BenchmarkFixture, model: str) -> int | None:
    """MACs of one ``1x3xCROPxCROP`` forward of preset ``model``; traced only when timing is on."""
    return None if benchmark.disabled else count_macs(build_model(model), (1, 3, CROP, CROP)).macs


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


@pytest.mark.parametrize("method", METHODS.names())
def test_train_step(benchmark: BenchmarkFixture, teacher: torch.nn.Module, method: str) -> None:
    case = make_step(method, PROFILE.student, teacher, BATCH, CROP, device=DEVICE)
    _info(benchmark, method=method, student=PROFILE.student, teacher=PROFILE.teacher,
          student_params=case.student_params, adapter_params=case.adapter_params,
          student_macs_per_image=_macs(benchmark, PROFILE.student),
          mac_unit="multiply-accumulates per image, student forward")

    def step() -> None:
        case.step()
        _sync()

    benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=2, iterations=1)


def test_teacher_forward(benchmark: BenchmarkFixture, teacher: torch.nn.Module) -> None:
    case = make_step("scratch", PROFILE.student, teacher, BATCH, CROP, device=DEVICE)
    _info(benchmark, model=PROFILE.teacher, macs_per_image=_macs(benchmark, PROFILE.teacher),
          mac_unit="multiply-accumulates per image, teacher forward (no_grad, eval)")

    def forward() -> None:
        case.teacher_forward()
        _sync()

    benchmark.pedantic(forward, rounds=ROUNDS, warmup_rounds=2, iterations=1)
