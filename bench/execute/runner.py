"""Run a grid: teachers first, then every pending cell, on a local or a Ray executor.

Finished cells (a ``done`` record) are skipped unless ``force``; a cell is claimed with a lock file
before it runs, so two runners on one grid (or a runner restarted after SIGKILL) never run a cell
twice. Every failure is contained: any exception in a cell (or in the teacher it needs) becomes a
``failed`` record with its traceback and the grid goes on; only SIGINT and SIGTERM stop it
(:mod:`bench.execute.signals`): the run unwinds, releasing every lock it holds (its workers' too),
writes no record for the cells it stopped, says in one line which cells are finished and exits
with ``SystemExit(128 + signal)``; a rerun resumes the others. An unreadable record is set aside
and its cell redone. The grid's manifest (its spec, cells, labels, ids and the architecture
measurements' keys; see :mod:`bench.store`) is written first and completed last, so ``status``
and ``report`` know every cell of the grid.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.spec.grid import Grid
from bench.spec.plugins import load_plugins
from bench.store import CorruptRecordError, RunStore, non_finite_metric
from skd_core.errors import ConfigError

from .arch import measure_all
from .cells import Cell, StudentJob, cell_teacher, cells_of, needs_teacher
from .executors import EXECUTORS, available_cpus, executor_map
from .manifest import manifest
from .plan import replay_plan, select
from .progress import cell_desc, finished_line
from .provenance import provenance
from .replay import ReplaySpec, claim_run_folder
from .replay import remove as remove_replay
from .replay import remove_stale as remove_stale_replay
from .signals import Terminated, exit_status, signals_raise, stop_signal
from .students import run_student
from .tblog import log_tracker
from .teachers import prepare_teacher


@dataclass
class GridSummary:
    done: int = 0
    failed: int = 0
    skipped: int = 0  # finished before this run
    busy: int = 0  # claimed by another live runner
    seconds: float = 0.0


def run_grids(
    grids: Sequence[Grid], runs_dir: Path, *, executor: str = "local", workers: int = 1, device: str = "cpu",
    force: bool = False, only: Iterable[str] = (), progress: bool = True, address: str | None = None,
    replay: bool = True,
) -> GridSummary:
    """Run the cells of ``grids`` that match ``only`` in the run store at ``runs_dir``; ``replay``:
    distilled cells that share a teacher and batches replay its forward (:func:`replay_plan`).
    SIGINT or SIGTERM stops it: one line on stderr, then ``SystemExit`` with status 130 or 143."""
    with signals_raise():
        try:
            return _run_grids(grids, runs_dir, executor=executor, workers=workers, device=device, force=force,
                              only=only, progress=progress, address=address, replay=replay)
        except (KeyboardInterrupt, Terminated) as exc:
            print(_stopped_line(grids, runs_dir, only, stop_signal(exc).name), file=sys.stderr)
            raise SystemExit(exit_status(exc)) from None


def _stopped_line(grids: Sequence[Grid], runs_dir: Path, only: Iterable[str], signame: str) -> str:
    """What a stopped run says: which of its cells are finished, and that a rerun resumes."""
    cells, _ = select(grids, list(only))
    store = RunStore(runs_dir)
    done = [f"{c.label} {c.task} seed {c.seed}" for c in cells.values()
            if store.status(store.cell_dir(c.id))[0] == "done"]
    names = (": " + ", ".join(done[:5]) + (f" and {len(done) - 5} more" if len(done) > 5 else "")) if done else ""
    return (f"skd-bench run: stopped by {signame} with {len(done)} of {len(cells)} cells finished{names}; "
            f"run the same command again to resume the other {len(cells) - len(done)}")


def _run_grids(
    grids: Sequence[Grid], runs_dir: Path, *, executor: str, workers: int, device: str, force: bool,
    only: Iterable[str], progress: bool, address: str | None, replay: bool,
) -> GridSummary:
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    log_tracker()  # a bad SKD_LOG is one error before anything runs
    store = RunStore(runs_dir).writable()
    cells, resolved = select(grids, list(only))
    earlier = {}  # the architecture keys an earlier run of a grid recorded, kept until measured again
    for grid, grid_cells in resolved:
        try:
            earlier[grid.study] = (store.read_manifest(grid.study, grid.run_key()) or {}).get("arch", {})
        except CorruptRecordError:
            earlier[grid.study] = {}
        store.write_manifest(grid.study, grid.run_key(), manifest(grid, grid_cells, earlier[grid.study]))
    summary = GridSummary()
    pending = []
    for cid, cell in cells.items():
        status, _, _ = store.status(store.cell_dir(cid))
        if status == "done" and not force:
            summary.skipped += 1
        elif status == "running":
            summary.busy += 1
        else:
            pending.append(cell)
    needing = {c.id: cell_teacher(c) for c in pending if needs_teacher(c)}
    # a grid with train_teacher gets its selected cells' teachers even when no cell needs one
    asked = [c for grid, grid_cells in resolved if grid.train_teacher for c in grid_cells if c.id in cells]
    teachers: dict[str, StudentJob] = {}
    for cell in [*(c for c in pending if c.id in needing), *asked]:
        teachers.setdefault(cell_teacher(cell), cell.job)
    cpus = available_cpus()
    threads = max(1, cpus // workers) if device == "cpu" else 0
    t0 = time.perf_counter()
    run = executor_map(executor)
    # teachers first (every cell of a task needs its teacher), in parallel across tasks
    n_teachers = max(1, min(workers, len(teachers)))
    teacher_threads = max(1, cpus // n_teachers) if device == "cpu" else 0
    outcomes = run(prepare_teacher, [(job, store.root, device, teacher_threads, progress and n_teachers == 1)
                              for job in teachers.values()], n_teachers, "teachers", address, progress=False,
                   cpus=teacher_threads, cuda=device.startswith("cuda"))
    failed_teachers = {tid: out for tid, out in zip(teachers, outcomes, strict=True) if out != "done"}
    runnable = []
    for cell in pending:
        tid = needing.get(cell.id)
        if tid in failed_teachers:
            error, _, trace = failed_teachers[tid].removeprefix("failed: ").partition("\n")
            if _fail_unclaimed(store, cell, f"teacher {tid} failed: {error}", trace):
                summary.failed += 1
        else:
            runnable.append(cell)
    for tid, out in failed_teachers.items():
        print(f"skd-bench: teacher {tid} {out.splitlines()[0]}", file=sys.stderr)
    remove_stale_replay(store.replay_dir())  # entries of runs whose owner is gone
    # each cell's name in its finished line, from the first grid that has it
    descs = {c.id: cell_desc(grid.study, c) for grid, grid_cells in reversed(resolved) for c in grid_cells}

    def finished(index: int) -> None:  # a group's entries go when its last cell ends
        if (spec := specs.get(runnable[index].id)) is not None:
            left[spec.folder] -= 1
            if not left[spec.folder]:
                remove_replay(spec.folder)
        if progress and not sys.stderr.isatty():  # no bar on a pipe or in a log: one line per cell
            cid = runnable[index].id
            print(finished_line(cid, descs[cid], *store.status(store.cell_dir(cid))), file=sys.stderr, flush=True)

    replay_root, replay_owner = claim_run_folder(store.replay_dir())
    try:
        runnable, specs = replay_plan(runnable, replay_root) if replay else (runnable, {})
        left = Counter(spec.folder for spec in specs.values())
        statuses = run(run_cell, [(c.job, c.id, store.root, device, threads, force, progress and workers == 1,
                                   specs.get(c.id)) for c in runnable], workers, "cells", address,
                       progress=progress, cpus=threads, cuda=device.startswith("cuda"), on_done=finished)
    finally:
        remove_replay(replay_root)
        replay_owner.release()
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
    arch = measure_all([(m, c.job.profile.throughput_size) for _, grid_cells in resolved for c in grid_cells
                        for m in (c.job.student, c.job.profile.teacher)], store, device)
    for grid, grid_cells in resolved:
        store.write_manifest(grid.study, grid.run_key(), manifest(grid, grid_cells, {**earlier[grid.study], **arch}))
    summary.seconds = time.perf_counter() - t0
    return summary


def run_cell(job: StudentJob, cell_id: str, root: Path, device: str, threads: int, force: bool,
             progress: bool, replay: ReplaySpec | None = None) -> str:
    """Claim and run one cell (in whatever process or Ray worker this is); returns its final status.
    Any exception becomes the cell's ``failed`` record (run_student writes it when it gets that
    far; this function otherwise). ``replay``: the cell's part in its group's teacher replay."""
    store = RunStore(root)
    folder = store.cell_dir(cell_id)
    lock = store.lock(folder)
    started = time.time()
    if not lock.try_acquire():
        return "busy"
    try:  # directly after the claim: a signal delivered in between would leave the lock held
        if threads:
            torch.set_num_threads(threads)
        load_plugins(job.plugins)
        if (now := job.id()) != cell_id:  # the source, data or plugins changed since the grid was resolved
            raise ConfigError(f"cell {cell_id} resolves to id {now} in this worker: its code or data changed "
                              "while the grid ran; run the grid again")
        try:
            record = store.read_record(folder)
        except CorruptRecordError as exc:
            print(f"skd-bench: {exc}; set aside as {store.set_aside(folder)}, the cell is redone", file=sys.stderr)
            record = None
        if record is not None and record.get("status") == "done" and not non_finite_metric(record) and not force:
            return "skipped"
        if force and folder.exists():
            store.clear(folder)
        run_student(job, store, device, progress=progress, resume=True, replay=replay)
        return "done"
    except Exception as exc:
        if not _recorded_failure(store, folder, started):
            fail_cell(store, cell_id, job, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        return "failed"
    finally:
        lock.release()


def _recorded_failure(store: RunStore, folder: Path, since: float) -> bool:
    """Whether run_student recorded this attempt's failure (a failed record written after ``since``)."""
    try:
        record = store.read_record(folder)
    except CorruptRecordError:
        return False
    return record is not None and record.get("status") == "failed" and record.get("finished", 0) >= since


def fail_cell(store: RunStore, cell_id: str, job: StudentJob, error: str, trace: str) -> None:
    """Write a ``failed`` record for a cell that could not run (its teacher failed, or it failed
    before training started)."""
    try:
        config, data = job.config(), job.data()
    except Exception:  # the failure may be in resolving the job itself
        config, data = None, None
    store.write_record(store.cell_dir(cell_id), {
        "id": cell_id, "kind": "student", "status": "failed", "config": config, "data": data, "error": error,
        "traceback": trace, "provenance": provenance(), "finished": time.time(), "pid": os.getpid()})


def _fail_unclaimed(store: RunStore, cell: Cell, error: str, trace: str) -> bool:
    """Fail a cell whose teacher failed, unless another runner holds it or finished it meanwhile."""
    lock = store.lock(store.cell_dir(cell.id))
    if not lock.try_acquire():
        return False
    try:
        if store.status(store.cell_dir(cell.id))[0] == "done":
            return False
        fail_cell(store, cell.id, cell.job, error, trace)
        return True
    finally:
        lock.release()


def grid_status(grid: Grid, runs_dir: Path) -> list[dict[str, Any]]:
    """One row per cell: label, task, seed, status (``done``, ``running``, ``failed``, ``corrupt``,
    ``pending``), PSNR (dB) when done, the problem when failed or corrupt, id."""
    store = RunStore(runs_dir)
    rows = []
    for cell in cells_of(grid):
        status, record, problem = store.status(store.cell_dir(cell.id))
        rows.append({"label": cell.label, "task": cell.task, "seed": cell.seed, "status": status,
                     "psnr_dB": (record or {}).get("metrics", {}).get("psnr") if status == "done" else None,
                     "error": problem, "id": cell.id})
    return rows
