"""pytest-benchmark: MCA forward+backward at N = 16384 tokens (a 128x128 crop's first level), C = 48.

Run with ``pytest tests/benchmarks --benchmark-enable`` to time it and to record, in
``extra_info``, the peak memory measured in a fresh process (``mca_peak_memory.py``: RSS
high-water growth on CPU, ``max_memory_allocated`` on CUDA). The suite's default
``--benchmark-disable`` runs each case once as a plain test; the explicit ``N x N`` spatial product
(about 3 GiB, several seconds) then is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from skd_core.mca import channel_attention, spatial_attention

TOKENS, CHANNELS = 16384, 48
REPO = Path(__file__).resolve().parents[2]
PEAK_SCRIPT = Path(__file__).with_name("mca_peak_memory.py")
CASES = {
    "channel": lambda s, t: channel_attention(s, t),
    "spatial-sdpa": lambda s, t: spatial_attention(s, t, impl="sdpa"),
    "spatial-matmul": lambda s, t: spatial_attention(s, t, impl="matmul"),
}


def _peak_memory(case: str, device: str) -> dict[str, object]:
    form, _, impl = case.partition("-")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(PEAK_SCRIPT), "--form", form, "--impl", impl or "sdpa", "--tokens", str(TOKENS),
         "--channels", str(CHANNELS), "--device", device],
        capture_output=True, text=True, env=env, check=True,
    )
    record = json.loads(done.stdout)
    return {"peak_mib": record["peak_mib"], "memory_method": record["memory_method"]}


@pytest.mark.parametrize("case", list(CASES))
def test_mca_forward_backward(benchmark, case):
    if case == "spatial-matmul" and benchmark.disabled:
        pytest.skip("explicit N x N product (about 3 GiB) runs only with --benchmark-enable")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    fn = CASES[case]

    def setup() -> tuple[tuple[torch.Tensor, torch.Tensor], dict]:
        student = torch.randn(1, CHANNELS, 128, 128, device=device, requires_grad=True)
        teacher = torch.randn(1, CHANNELS, 128, 128, device=device)
        return (student, teacher), {}

    def step(student: torch.Tensor, teacher: torch.Tensor) -> None:
        fn(student, teacher).square().mean().backward()
        if device == "cuda":
            torch.cuda.synchronize()

    benchmark.extra_info.update({
        "case": case, "tokens": TOKENS, "channels": CHANNELS, "batch": 1, "dtype": "float32",
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "threads": torch.get_num_threads(), "unit": "seconds per forward+backward",
    })
    if not benchmark.disabled:
        benchmark.extra_info.update(_peak_memory(case, device))
    benchmark.pedantic(step, setup=setup, rounds=3, warmup_rounds=1)
