"""nox sessions: tests, ablations, paper_tables, perf, lint.

Torch: the sessions install ``torch==2.13.0`` first (on a CPU machine pip takes the local CPU
wheel, no CUDA packages). A GPU user sets ``SKD_TORCH_SPEC`` (e.g. ``"torch==2.13.0"`` with their
own index through PIP_INDEX_URL / PIP_EXTRA_INDEX_URL) or ``SKD_TORCH_SPEC=skip`` to keep the torch
already importable in a session reused with ``--reuse-venv``.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

TORCH_SPEC = os.environ.get("SKD_TORCH_SPEC", "torch==2.13.0")


def install(session: nox.Session, extras: str = "dev") -> None:
    if TORCH_SPEC != "skip":
        session.install(TORCH_SPEC)
    session.install("-e", f".[{extras}]")


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests (CPU only); posargs go to pytest."""
    install(session)
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the code."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "skd_core", "bench", "tests", "noxfile.py")
