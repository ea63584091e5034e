"""What identifies a number besides its config: git commit, library versions and machine (pytest-benchmark
style)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from skd_core.complexity.env import cpu_name

REPO = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def git_info() -> dict[str, Any]:
    """Commit, branch and dirty flag of the checkout (empty values outside git)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(status)}


def versions() -> dict[str, str]:
    import numpy
    import skimage

    import skd_core

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
           "scikit-image": skimage.__version__, "skd_core": skd_core.__version__,
           "cuda": torch.version.cuda or "none"}
    for dist in ("fvcore", "pandas", "seaborn"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "node": platform.node(),
        "system": platform.system(),
        "machine": platform.machine(),
        "processor": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def provenance() -> dict[str, Any]:
    """The block stored beside every result: git, versions, machine (the code identity that a
    result's id hashes is stored in its record as ``code``, see :mod:`bench.spec.codeid`)."""
    return {"git": git_info(), "versions": versions(), "machine": machine()}


def config_hash(config: Any, n: int = 16) -> str:
    """Stable hash of JSON-able ``config`` (sorted keys)."""
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:n]
