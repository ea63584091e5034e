"""Shared test fixtures: the official Restormer reference outputs and deterministic torch settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

#: outputs of the official Restormer architecture (swz30/Restormer df766d5), see its README
REFERENCE = Path(__file__).resolve().parent / "data" / "restormer_reference"


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.fail(f"reference outputs of the official Restormer not found at {REFERENCE}")
    return REFERENCE
