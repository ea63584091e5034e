"""What identifies a number: code version, library versions and machine (pytest-benchmark style)."""

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

REPO = Path(__file__).resolve().parents[1]
#: the sources whose change changes a result: the library and the job definition (not the CLI,
#: grid runner or reports, whose edits must not invalidate finished cells)
CODE_SOURCES = ("skd_core/**/*.py", "bench/jobs.py", "bench/profiles.py")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the sources in :data:`CODE_SOURCES`, 12 hex digits.

    Cell identity uses this instead of the git commit, so a commit that only touches docs, tests,
    the CLI or reports keeps finished cells valid while any change to what computes them invalidates
    them.
    """
    h = hashlib.sha256()
    for pattern in CODE_SOURCES:
        for path in sorted(REPO.glob(pattern)):
            h.update(str(path.relative_to(REPO)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


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
    """The block stored beside every result: code, git, versions, machine."""
    return {"code_version": code_version(), "git": git_info(), "versions": versions(), "machine": machine()}


def config_hash(config: Any, n: int = 16) -> str:
    """Stable hash of JSON-able ``config`` (sorted keys)."""
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:n]
