"""pytest-benchmark machine info: torch and CUDA versions, device name and thread count, so that a
saved benchmark run says what it ran on."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest
import torch

from skd_core.complexity.env import environment


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Add ``torch``: the :class:`~skd_core.complexity.env.Environment` of the device benchmarks use."""
    machine_info["torch"] = asdict(environment("cuda" if torch.cuda.is_available() else "cpu"))
