"""nox sessions: tests, ablations, extended, paper_tables, perf, lint.

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
    """Unit and integration tests (CPU only; the Ray executor against a local Ray), test files in
    parallel (pytest-xdist); posargs go to pytest instead of the defaults.
    The browser tests skip without /usr/bin/chromium unless SKD_REQUIRE_BROWSER=1 (nox passes the
    caller's environment through; .ci/run installs Chromium and sets it)."""
    install(session, "dev,ray")
    # test files spread over up to 4 pytest-xdist workers (one per core); a file stays on one worker,
    # so its module fixtures are built once and the guide's steps run in order
    session.run("pytest", *(session.posargs or ["-q", "--durations=15", "-n", "auto", "--maxprocesses", "4",
                                                "--dist", "loadfile"]))


@nox.session
def perf(session: nox.Session) -> None:
    """Benchmarks of the working tree vs a baseline measured on this machine (default: HEAD, in a
    temporary git worktree); fails on a median regression. posargs go to ``skd-bench perf``, e.g.
    ``nox -s perf -- --baseline origin/main --threshold 15`` or ``--baseline .perf/main.json``."""
    install(session)
    session.run("skd-bench", "perf", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the code."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "skd_core", "bench", "tests", "noxfile.py")


DEFAULT_STUDIES = ("student_sizes", "kd_methods")
#: studies that do not fit the default set's time budget (README: their measured times)
EXTENDED_STUDIES = ("mca_dims", "contrastive", "distance", "skd_sizes", "budget")


def _grid_args(session: nox.Session, default_studies: tuple[str, ...], default_profile: str) -> list[str]:
    """posargs: study names (or grid files) first, then any ``skd-bench run`` options, e.g.
    ``nox -s ablations -- mca_dims distance --profile smoke --workers 2 --executor ray``."""
    args = list(session.posargs)
    studies = []
    while args and not args[0].startswith("-"):
        studies.append(args.pop(0))
    files = [s if s.endswith(".yaml") else f"ablations/{s}.yaml" for s in studies or default_studies]
    if "--profile" not in args:
        args += ["--profile", default_profile]
    return files + args


@nox.session
def ablations(session: nox.Session) -> None:
    """The default studies on the `cpu` profile (embedded data), then their reports under results/."""
    _run_and_report(session, DEFAULT_STUDIES)


@nox.session
def extended(session: nox.Session) -> None:
    """The studies outside the default set's time budget (SKD's ablations, SKD across student sizes,
    the training-budget learning curves), on the `cpu` profile, then their reports under results/."""
    _run_and_report(session, EXTENDED_STUDIES)


def _run_and_report(session: nox.Session, studies: tuple[str, ...]) -> None:
    install(session)
    args = _grid_args(session, studies, "cpu")
    if "--workers" not in args:
        args += ["--workers", "2"]
    if "--device" not in args:  # the committed cpu-profile results are CPU numbers (skd-bench's default is auto)
        args += ["--device", "cpu"]
    session.run("skd-bench", "run", *args)
    report_args = [a for a in args if a.endswith(".yaml")] + _passthrough(args, ("--profile", "--runs-dir", "--set"))
    session.run("skd-bench", "report", *report_args)


@nox.session
def paper_tables(session: nox.Session) -> None:
    """The `paper` profile on real datasets (GPU): needs train_data/test_data folders and, unless the
    teacher is to be trained, teacher_checkpoint, all given as --set KEY=VALUE posargs."""
    args = _grid_args(session, ("paper_table",), "paper")
    given = {a.split("=", 1)[0] for a in args if "=" in a}
    missing = [k for k in ("train_data", "test_data") if k not in given]
    if missing:
        session.error(
            "paper_tables needs real datasets: pass " + " ".join(f"--set {k}=folder:PATH" for k in missing)
            + " (and --set teacher_checkpoint=PATH for an official Restormer checkpoint; --device cuda on a GPU),"
            " e.g. nox -s paper_tables -- --set train_data=folder:/data/Rain13K/train"
            " --set test_data=folder:/data/test/Rain100H --set layout=rain13k --device cuda")
    install(session)
    session.run("skd-bench", "run", *args)
    report_args = [a for a in args if a.endswith(".yaml")] + _passthrough(args, ("--profile", "--runs-dir", "--set"))
    session.run("skd-bench", "report", *report_args)


def _passthrough(args: list[str], options: tuple[str, ...]) -> list[str]:
    """The ``--option VALUE`` pairs of ``args`` whose option is in ``options``."""
    out = []
    for i, a in enumerate(args):
        if a in options and i + 1 < len(args):
            out += [a, args[i + 1]]
    return out
