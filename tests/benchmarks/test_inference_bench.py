"""pytest-benchmark: teacher vs student inference (cpu-profile presets) at one fixed shape.

``pytest tests/benchmarks --benchmark-enable`` times them (compare the two in one run: machines are
noisy); the suite's default ``--benchmark-disable`` runs each once as a plain test. ``extra_info``
says what was measured: MACs (with unit and counter), params, shape, dtype, threads, device.
"""

from __future__ import annotations

import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture

from skd_core.complexity.env import environment
from skd_core.complexity.macs import COUNTER, count_macs
from skd_core.complexity.params import count_params
from skd_core.models import build_model

SHAPE = (1, 3, 64, 64)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("name", ["teacher-cpu", "student-cpu"])
def test_inference(benchmark: BenchmarkFixture, name: str) -> None:
    model = build_model(name).eval().to(DEVICE)
    x = torch.rand(SHAPE, device=DEVICE)
    report = count_macs(model, SHAPE)
    env = environment(DEVICE)
    benchmark.group = f"inference {'x'.join(map(str, SHAPE))} {DEVICE}"
    benchmark.extra_info.update(
        model=name, params=count_params(model), macs=report.macs, conv_macs=report.conv_macs,
        mac_unit="multiply-accumulates per forward", counter=COUNTER, input_shape=list(SHAPE), dtype="fp32",
        threads=env.threads, device=env.device, device_name=env.device_name, torch_version=env.torch_version,
        cuda_version=env.cuda_version,
    )

    def forward() -> None:
        with torch.inference_mode():
            model(x)
        if DEVICE == "cuda":
            torch.cuda.synchronize()

    benchmark.pedantic(forward, rounds=5, warmup_rounds=1, iterations=1)
    assert report.uncounted_ops == {}
