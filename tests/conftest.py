"""Shared test fixtures: the official Restormer reference outputs and deterministic torch settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

#: outputs of the official Restormer architecture (swz30/Restormer df766d5), see its README
REFERENCE = Path(__file__).resolve().parent / "data" / "restormer_reference"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker gets its own share of the CPUs (affinity, and torch's threads
    to match): the runner and every subprocess size their threads by the affinity, so workers do
    not oversubscribe the cores (two workers of two threads each on two cores slow every training
    test several times over)."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= count:
        share = set(cpus[int(worker.removeprefix("gw")) % count::count])
        os.sched_setaffinity(0, share)
        torch.set_num_threads(len(share))


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.fail(f"reference outputs of the official Restormer not found at {REFERENCE}")
    return REFERENCE
