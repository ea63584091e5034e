"""What identifies a number besides its config: git commit, library versions and machine (pytest-benchmark
style), and the machine identity within which a rerun gives bitwise-equal records (:func:`machine_identity`)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
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


@functools.lru_cache(maxsize=1)
def blas_build() -> dict[str, str | None]:
    """The BLAS and oneDNN builds torch was compiled with, from ``torch.__config__.show()``: ``blas``
    (``BLAS_INFO``: mkl, open, ...), ``mkl`` and ``onednn`` versions (None where absent)."""
    text = torch.__config__.show()

    def find(pattern: str) -> str | None:
        found = re.search(pattern, text)
        return found.group(1) if found else None

    return {"blas": find(r"BLAS_INFO=([\w.-]+)"), "mkl": find(r"Math Kernel Library Version ([\d.]+)"),
            "onednn": find(r"(?:MKL-DNN|oneDNN) v([\d.]+)")}


def machine_identity(device: torch.device | str | None = None) -> dict[str, Any]:
    """What, beyond code, config and seeds, decides a record's bits: the CPU model, the kernels torch
    dispatches to (``capability``: ``torch.backends.cpu.get_cpu_capability()``), the BLAS and oneDNN
    builds (:func:`blas_build`), the intra-op ``threads`` and, for a CUDA ``device``, the GPU's
    ``cuda_device`` name and ``cuda_capability`` (``major.minor``); ``label``: :func:`identity_key`.
    Records of one identity are bitwise equal on a rerun; across identities they are not."""
    info: dict[str, Any] = {"cpu": cpu_name(), "capability": torch.backends.cpu.get_cpu_capability(),
                            **blas_build(), "threads": torch.get_num_threads()}
    if device is not None and torch.device(device).type == "cuda":
        index = torch.device(device).index
        index = torch.cuda.current_device() if index is None else index
        info["cuda_device"] = torch.cuda.get_device_name(index)
        info["cuda_capability"] = "{}.{}".format(*torch.cuda.get_device_capability(index))
    return {**info, "label": identity_key(info)}


def identity_key(identity: dict[str, Any]) -> str:
    """A machine identity's short label, the key reports group records by, e.g. ``AMD EPYC 7B13 ·
    AVX2 · MKL 2024.2 · oneDNN 3.12.0 · 2 threads`` (then ``· <GPU> sm <capability>`` on CUDA)."""
    blas = f"MKL {identity['mkl']}" if identity.get("mkl") else f"BLAS {identity.get('blas') or 'unknown'}"
    parts = [identity["cpu"], identity["capability"], blas]
    if identity.get("onednn"):
        parts.append(f"oneDNN {identity['onednn']}")
    threads = identity["threads"]
    parts.append(f"{threads} thread{'s' * (threads != 1)}")
    if identity.get("cuda_device"):
        parts.append(f"{identity['cuda_device']} sm {identity['cuda_capability']}")
    return " · ".join(parts)


def provenance(device: torch.device | str | None = None) -> dict[str, Any]:
    """The block stored beside every result: git, versions, machine and the machine ``identity``
    (:func:`machine_identity` on ``device``; the code identity that a result's id hashes is stored in
    its record as ``code``, see :mod:`bench.spec.codeid`). None of it enters a result's id."""
    return {"git": git_info(), "versions": versions(), "machine": machine(), "identity": machine_identity(device)}


def config_hash(config: Any, n: int = 16) -> str:
    """Stable hash of JSON-able ``config`` (sorted keys)."""
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:n]
