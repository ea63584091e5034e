"""Run a grid: teachers first, then every pending cell, on a local or a Ray executor.

Finished cells (a ``done`` record) are skipped unless ``force``; a cell is claimed with a lock file
before it runs, so two runners on one grid (or a runner restarted after SIGKILL) never run a cell
twice; a failed cell records its error and the grid goes on. The grid's manifest
(``runs/grids/<study>.json``: its cells, labels and ids) is written first, atomically, so
``status`` and ``report`` know every cell of the grid.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from skd_core.atomic import atomic_write_json
from skd_core.errors import ConfigError, SkdError
from skd_core.methods import METHODS

from .arch import measure_all
from .grid import Cell, Grid, match_only
from .jobs import RECORD, StudentJob, ensure_teacher, read_record, run_student
from .locks import FileLock

EXECUTORS = ("local", "ray")


@dataclass
class GridSummary:
    done: int = 0
    failed: int = 0
    skipped: int = 0  # finished before this run
    busy: int = 0  # claimed by another live runner
    seconds: float = 0.0


def cell_folder(runs_dir: Path, cell_id: str) -> Path:
    return runs_dir / "cells" / cell_id


def cell_status(runs_dir: Path, cell_id: str) -> tuple[str, dict[str, Any] | None]:
    """The cell's status -- ``done``, ``failed``, ``running`` (claimed by a live runner) or
    ``pending`` -- and its record (None when there is none yet)."""
    folder = cell_folder(runs_dir, cell_id)
    record = read_record(folder)
    lock = FileLock(folder / "run.lock")
    if lock.path.exists() and not lock.is_stale():
        return "running", record
    if record is not None:
        return record.get("status", "failed"), record
    return "pending", None


def write_manifest(grid: Grid, runs_dir: Path) -> Path:
    cells = [{"id": c.id, "label": c.label, "task": c.task, "seed": c.seed, "method": c.job.method,
              "student": c.job.student, "axes": c.axes} for c in grid.cells]
    return atomic_write_json(runs_dir / "grids" / f"{grid.study}.json", {
        "study": grid.study, "description": grid.description, "spec_file": str(grid.path), "spec": grid.spec,
        "profile": grid.profile, "tasks": grid.tasks, "seeds": grid.seeds, "cells": cells,
        "written": time.time()})


def run_cell(job: StudentJob, runs_dir: Path, device: str, threads: int, force: bool,
             progress: bool) -> str:
    """Claim and run one cell (in whatever process or Ray worker this is); returns its final status."""
    if threads:
        torch.set_num_threads(threads)
    folder = cell_folder(runs_dir, job.id())
    lock = FileLock(folder / "run.lock")
    if not lock.try_acquire():
        return "busy"
    try:
        record = read_record(folder)
        if record is not None and record.get("status") == "done" and not force:
            return "skipped"
        if force and folder.exists():
            shutil.rmtree(folder / "checkpoint", ignore_errors=True)
            (folder / RECORD).unlink(missing_ok=True)
        try:
            run_student(job, runs_dir, device, progress=progress, resume=True)
        except (SkdError, RuntimeError, ValueError, FloatingPointError):
            return "failed"  # run_student recorded the error
        return "done"
    finally:
        lock.release()


def _teacher(job: StudentJob, runs_dir: Path, device: str, threads: int, progress: bool) -> str:
    if threads:
        torch.set_num_threads(threads)
    ensure_teacher(job.profile, job.task, job.teacher_seed, runs_dir, device, progress)
    return "done"


def run_grids(
    grids: Sequence[Grid], runs_dir: Path, *, executor: str = "local", workers: int = 1, device: str = "cpu",
    force: bool = False, only: Iterable[str] = (), progress: bool = True, address: str | None = None,
) -> GridSummary:
    """Run the cells of ``grids`` (deduplicated by id: a cell shared by two studies runs once)."""
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    only = list(only)
    for grid in grids:
        write_manifest(grid, runs_dir)
    cells: dict[str, Cell] = {}
    for grid in grids:
        for cell in grid.cells:
            if match_only(cell, only):
                cells.setdefault(cell.id, cell)
    summary = GridSummary()
    pending = []
    for cid, cell in cells.items():
        status, _ = cell_status(runs_dir, cid)
        if status == "done" and not force:
            summary.skipped += 1
        elif status == "running":
            summary.busy += 1
        else:
            pending.append(cell)
    teachers = {}
    for cell in pending:
        if METHODS.get(cell.job.method).needs_teacher:
            key = (cell.job.profile.name, cell.task, cell.job.teacher_seed, str(cell.job.config()["teacher"]))
            teachers.setdefault(key, cell.job)
    cpus = os.cpu_count() or 1
    threads = max(1, cpus // workers) if device == "cpu" else 0
    t0 = time.perf_counter()
    run = _ray_map if executor == "ray" else _local_map
    # teachers first (every cell of a task needs its teacher), in parallel across tasks
    n_teachers = max(1, min(workers, len(teachers)))
    teacher_threads = max(1, cpus // n_teachers) if device == "cpu" else 0
    run(_teacher, [(job, runs_dir, device, teacher_threads, progress and n_teachers == 1)
                   for job in teachers.values()], n_teachers, "teachers", address, progress=False)
    statuses = run(run_cell, [(c.job, runs_dir, device, threads, force, progress and workers == 1)
                              for c in pending], workers, "cells", address, progress=progress)
    for status in statuses:
        if status == "done":
            summary.done += 1
        elif status == "failed":
            summary.failed += 1
        elif status == "skipped":
            summary.skipped += 1
        else:
            summary.busy += 1
    # complexity and throughput once per architecture, with the machine to itself
    measure_all([(m, c.job.profile.throughput_size) for c in cells.values()
                 for m in (c.job.student, c.job.profile.teacher)], runs_dir, device)
    summary.seconds = time.perf_counter() - t0
    return summary


def _local_map(fn: Any, arglists: list[tuple], workers: int, what: str, address: str | None,
               progress: bool) -> list[str]:
    if not arglists:
        return []
    bar = tqdm(total=len(arglists), desc=what, unit="job", disable=not progress, dynamic_ncols=True)
    out = []
    if workers == 1:
        for args in arglists:
            out.append(fn(*args))
            bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            for fut in as_completed([pool.submit(fn, *args) for args in arglists]):
                out.append(fut.result())
                bar.update(1)
    bar.close()
    return out


def _ray_map(fn: Any, arglists: list[tuple], workers: int, what: str, address: str | None,
             progress: bool) -> list[str]:
    """One Ray task per job: ``threads`` CPUs each, and one GPU each when the job runs on CUDA."""
    if not arglists:
        return []
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("executor 'ray' needs Ray: pip install -e '.[ray]'") from exc
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}})
    uses_cuda = any(str(a[2]).startswith("cuda") for a in arglists)
    cpus = max(1, int(arglists[0][3]) or 1)
    remote = ray.remote(num_cpus=cpus, num_gpus=1 if uses_cuda else 0, max_retries=0)(fn)
    refs = [remote.remote(*args) for args in arglists]
    bar = tqdm(total=len(refs), desc=f"{what} (ray)", unit="job", disable=not progress, dynamic_ncols=True)
    out, remaining = [], refs
    while remaining:
        ready, remaining = ray.wait(remaining, num_returns=1)
        out.extend(ray.get(ready))
        bar.update(len(ready))
    bar.close()
    return out


def grid_status(grid: Grid, runs_dir: Path) -> list[dict[str, Any]]:
    """One row per cell: label, task, seed, status, PSNR (dB) when done, error when failed, id."""
    rows = []
    for cell in grid.cells:
        status, record = cell_status(runs_dir, cell.id)
        record = record or {}
        rows.append({"label": cell.label, "task": cell.task, "seed": cell.seed, "status": status,
                     "psnr_dB": (record.get("metrics") or {}).get("psnr") if status == "done" else None,
                     "error": record.get("error") if status == "failed" else None, "id": cell.id})
    return rows
