"""Run a grid: teachers first, then every pending cell, on a local or a Ray executor.

Finished cells (a ``done`` record) are skipped unless ``force``; a cell is claimed with a lock file
before it runs, so two runners on one grid (or a runner restarted after SIGKILL) never run a cell
twice. Every failure is contained: any exception in a cell (or in the teacher it needs) becomes a
``failed`` record with its traceback and the grid goes on; only ``KeyboardInterrupt`` and
``SystemExit`` stop it. An unreadable record is set aside and its cell redone. The grid's manifest
(its spec, cells, labels, ids and the architecture measurements' keys; see :mod:`bench.store`)
is written first and completed last, so ``status`` and ``report`` know every cell of the grid.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from skd_core.errors import ConfigError, closest_first
from skd_core.methods import METHODS

from .arch import measure_all
from .grid import Grid, short_value
from .jobs import Cell, StudentJob, cells_of, ensure_teacher, run_student, teacher_id
from .plugins import load_plugins
from .provenance import config_hash, provenance
from .replay import PLAYER, RECORDER, ReplaySpec
from .replay import remove as remove_replay
from .replay import remove_stale as remove_stale_replay
from .replay import run_folder as replay_folder
from .store import RECORD, CorruptRecordError, RunStore, non_finite_metric

EXECUTORS = ("local", "ray")


@dataclass
class GridSummary:
    done: int = 0
    failed: int = 0
    skipped: int = 0  # finished before this run
    busy: int = 0  # claimed by another live runner
    seconds: float = 0.0


def manifest(grid: Grid, cells: Sequence[Cell], arch: dict[str, str] | None = None) -> dict[str, Any]:
    """What a report needs of a grid run, without recomputing anything: the spec, each cell's id,
    label, axes, resolved config, teacher id (None when the grid trains no teacher for it) and the
    names of its options that hold tuned values (``tuned``), how those values were tuned
    (``tuning``: provenance per method, see :mod:`bench.tune.tuned`), and the keys of the
    architecture measurements."""
    rows = [{"id": c.id, "label": c.label, "task": c.task, "seed": c.seed, "method": c.job.method,
             "student": c.job.student, "teacher_model": c.job.profile.teacher,
             "teacher_id": _cell_teacher(c) if grid.train_teacher or _needs_teacher(c) else None, "axes": c.axes,
             "options": c.job.options, "tuned": tuned_options(c.job),
             "throughput_size": list(c.job.profile.throughput_size), "config": c.job.config()} for c in cells]
    tuning = {c.job.method: c.job.profile.tuning[c.job.method] for c, row in zip(cells, rows, strict=True)
              if row["tuned"]}
    return {"study": grid.study, "description": grid.description, "spec_file": str(grid.path), "spec": grid.spec,
            "profile": grid.profile, "overrides": grid.overrides, "key": grid.run_key(), "tasks": grid.tasks,
            "seeds": grid.seeds, "cells": rows, "tuning": tuning, "arch": arch or {}, "written": time.time()}


def tuned_options(job: StudentJob) -> list[str]:
    """The options of ``job`` that hold its profile's tuned values (not replaced by the cell's own)."""
    tuned = job.profile.tuning.get(job.method, {}).get("options", {})
    return [name for name, value in tuned.items() if job.options.get(name) == value]


def run_cell(job: StudentJob, cell_id: str, root: Path, device: str, threads: int, force: bool,
             progress: bool, replay: ReplaySpec | None = None) -> str:
    """Claim and run one cell (in whatever process or Ray worker this is); returns its final status.
    Any exception becomes the cell's ``failed`` record (run_student writes it when it gets that
    far; this function otherwise). ``replay``: the cell's part in its group's teacher replay."""
    store = RunStore(root)
    folder = store.cell_dir(cell_id)
    lock = store.lock(folder)
    if not lock.try_acquire():
        return "busy"
    started = time.time()
    try:
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
            shutil.rmtree(folder / "checkpoint", ignore_errors=True)
            (folder / RECORD).unlink(missing_ok=True)
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


def _needs_teacher(cell: Cell) -> bool:
    return METHODS.get(cell.job.method).needs_teacher


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: ``taskset``, cgroups cpusets, Slurm), which
    the workers' intra-op threads share; ``os.cpu_count()`` where the platform has no affinity."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _cell_teacher(cell: Cell) -> str:
    """The id of the teacher of ``cell``'s profile, task and teacher seed."""
    return teacher_id(cell.job.profile, cell.task, cell.job.teacher_seed)


def prepare_teacher(job: StudentJob, root: Path, device: str, threads: int, progress: bool) -> str:
    """Train (or find) a cell's teacher: ``done``, or ``failed: <error>`` with the traceback after a
    newline (the runner fails the cells that need it)."""
    try:
        if threads:
            torch.set_num_threads(threads)
        load_plugins(job.plugins)
        ensure_teacher(job.profile, job.task, job.teacher_seed, RunStore(root), device, progress,
                       keep_images=job.keep_images)
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    return "done"


def replay_plan(cells: Sequence[Cell], folder: Path) -> tuple[list[Cell], dict[str, ReplaySpec]]:
    """The teacher replay of ``cells`` (:mod:`bench.replay`) and their run order.

    Cells with the same teacher, task, seed, split and student schedule draw the same batches: a
    *group*. In each group of two or more, the first cell in grid order records and the others
    play. Order: the first group's recorder; then, group by group, the next group's recorder and
    this group's players; then every other cell -- so a player starts when its recorder is done
    (or far ahead), only about two groups' entries are on disk at a time, and the short
    teacher-free cells fill the end of the run. Returns the ordered cells and
    ``{cell id: spec}``."""
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        if _needs_teacher(cell):
            job = cell.job
            key = config_hash({"teacher": _cell_teacher(cell), "task": cell.task, "seed": cell.seed,
                               "split": job.split, "train": job.profile.student_train.to_dict()})
            groups.setdefault(key, []).append(cell)
    specs: dict[str, ReplaySpec] = {}
    shared = [members for members in groups.values() if len(members) > 1]
    for key, members in groups.items():
        for i, cell in enumerate(members if len(members) > 1 else ()):
            specs[cell.id] = ReplaySpec(folder / key, RECORDER if i == 0 else PLAYER, _cell_teacher(cell))
    order = [m[0] for m in shared[:1]]
    for i, members in enumerate(shared):
        order += [m[0] for m in shared[i + 1:i + 2]] + members[1:]
    ordered = {c.id: c for c in [*order, *cells]}  # dict: first position wins
    return list(ordered.values()), specs


def match_only(cell: Cell, only: Iterable[str]) -> bool:
    """``--only key=value`` filters: keys ``label``, ``task``, ``seed``, ``method``, ``student``, ``id``
    or an option name; all filters must match."""
    for item in only:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--only {item!r} must look like KEY=VALUE")
        fields = {"label": cell.label, "task": cell.task, "seed": str(cell.seed), "method": cell.job.method,
                  "student": cell.job.student, "id": cell.id,
                  **{k: short_value(v) for k, v in cell.job.options.items()}}
        if key not in fields:
            raise ConfigError(f"--only key {key!r} unknown; did you mean {closest_first(key, fields)[0]!r}?")
        if fields[key] != value:
            return False
    return True


def select(grids: Sequence[Grid], only: Sequence[str]) -> tuple[dict[str, Cell], list[tuple[Grid, list[Cell]]]]:
    """The cells of ``grids`` matching ``only`` (deduplicated by id: a cell shared by two studies
    runs once), and each grid with all its cells; ``--only`` matching no cell is an error."""
    resolved = [(grid, cells_of(grid)) for grid in grids]
    cells: dict[str, Cell] = {}
    for _, grid_cells in resolved:
        for cell in grid_cells:
            if match_only(cell, only):
                cells.setdefault(cell.id, cell)
    if only and not cells:
        raise ConfigError(f"--only {' '.join(only)} matches no cell of {', '.join(str(g.path) for g in grids)}")
    return cells, resolved


def run_grids(
    grids: Sequence[Grid], runs_dir: Path, *, executor: str = "local", workers: int = 1, device: str = "cpu",
    force: bool = False, only: Iterable[str] = (), progress: bool = True, address: str | None = None,
    replay: bool = True,
) -> GridSummary:
    """Run the cells of ``grids`` that match ``only`` in the run store at ``runs_dir``; ``replay``:
    distilled cells that share a teacher and batches replay its forward (:func:`replay_plan`)."""
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
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
    needing = {c.id: _cell_teacher(c) for c in pending if _needs_teacher(c)}
    # a grid with train_teacher gets its selected cells' teachers even when no cell needs one
    asked = [c for grid, grid_cells in resolved if grid.train_teacher for c in grid_cells if c.id in cells]
    teachers: dict[str, StudentJob] = {}
    for cell in [*(c for c in pending if c.id in needing), *asked]:
        teachers.setdefault(_cell_teacher(cell), cell.job)
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
    remove_stale_replay(store.root)  # entries of runs killed on this host
    replay_root = replay_folder(store.root)
    runnable, specs = replay_plan(runnable, replay_root) if replay else (runnable, {})
    left = Counter(spec.folder for spec in specs.values())

    def finished(index: int) -> None:  # a group's entries go when its last cell ends
        if (spec := specs.get(runnable[index].id)) is not None:
            left[spec.folder] -= 1
            if not left[spec.folder]:
                remove_replay(spec.folder)

    try:
        statuses = run(run_cell, [(c.job, c.id, store.root, device, threads, force, progress and workers == 1,
                                   specs.get(c.id)) for c in runnable], workers, "cells", address,
                       progress=progress, cpus=threads, cuda=device.startswith("cuda"), on_done=finished)
    finally:
        remove_replay(replay_root)
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


def executor_map(executor: str) -> Callable[..., list[str]]:
    """The map of ``executor`` (:data:`EXECUTORS`): ``map(fn, arglists, workers, what, address,
    progress, cpus, cuda, on_done)`` runs ``fn(*args)`` for each job, starting them in argument
    order, calls ``on_done(index)`` as each ends, and returns the results in argument order."""
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    return _ray_map if executor == "ray" else _local_map


def _local_map(fn: Any, arglists: list[tuple], workers: int, what: str, address: str | None,
               progress: bool, cpus: int = 1, cuda: bool = False,
               on_done: Callable[[int], None] | None = None) -> list[str]:
    """``fn(*args)`` for each job, in argument order, run in this process (one worker) or in spawned
    processes; a job whose process died is ``failed`` (its lock is then stale, the next run redoes it)."""
    if not arglists:
        return []
    bar = tqdm(total=len(arglists), desc=what, unit="job", disable=not progress, dynamic_ncols=True)
    out = []
    if workers == 1:
        for i, args in enumerate(arglists):
            out.append(fn(*args))
            if on_done:
                on_done(i)
            bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(fn, *args): i for i, args in enumerate(arglists)}
            done: dict[int, str] = {}
            for fut in as_completed(futures):
                try:
                    done[futures[fut]] = fut.result()
                except Exception as exc:  # the worker process itself failed (killed, out of memory)
                    print(f"skd-bench: a {what} worker failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                    done[futures[fut]] = "failed"
                if on_done:
                    on_done(futures[fut])
                bar.update(1)
            out = [done[i] for i in range(len(arglists))]
    bar.close()
    return out


def _ray_map(fn: Any, arglists: list[tuple], workers: int, what: str, address: str | None,
             progress: bool, cpus: int = 1, cuda: bool = False,
             on_done: Callable[[int], None] | None = None) -> list[str]:
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
    remote = ray.remote(num_cpus=max(1, cpus), num_gpus=1 if cuda else 0, max_retries=0)(fn)
    refs = [remote.remote(*args) for args in arglists]
    index = {ref: i for i, ref in enumerate(refs)}
    bar = tqdm(total=len(refs), desc=f"{what} (ray)", unit="job", disable=not progress, dynamic_ncols=True)
    done: dict[Any, str] = {}
    remaining = refs
    while remaining:
        ready, remaining = ray.wait(remaining, num_returns=1)
        for ref in ready:
            try:
                done[ref] = ray.get(ref)
            except Exception as exc:  # the Ray worker itself failed
                print(f"skd-bench: a {what} worker failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                done[ref] = "failed"
            if on_done:
                on_done(index[ref])
        bar.update(len(ready))
    bar.close()
    return [done[ref] for ref in refs]  # in argument order


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
