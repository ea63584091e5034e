"""Executors: run one function over many argument lists, in this process, in spawned local worker
processes, or as Ray tasks; results come back in argument order.

A map stopped by SIGINT or SIGTERM (an exception in this process: :mod:`bench.execute.signals`)
stops its jobs too: local workers get SIGTERM, which unwinds the running job (releasing its
locks) and ends the worker; running Ray tasks are cancelled (a ``KeyboardInterrupt`` in each).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import active_children, get_context
from pathlib import Path
from types import FrameType
from typing import Any

from tqdm import tqdm

from skd_core.errors import ConfigError

from .signals import Terminated, exit_status

EXECUTORS = ("local", "ray")
#: seconds the worker processes of a stopped run get to unwind their jobs (releasing the jobs'
#: locks) before they are killed
STOP_GRACE = 10.0
_in_job = False  # in a local worker process: whether it runs a job now


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: ``taskset``, cgroups cpusets, Slurm), which
    the workers' intra-op threads share; ``os.cpu_count()`` where the platform has no affinity."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


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
        before = set(active_children())
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_init)
        try:
            futures = {pool.submit(_job, fn, *args): i for i, args in enumerate(arglists)}
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
        except BaseException:  # stopped (SIGINT, SIGTERM): so are the workers
            _stop_workers(pool, [p for p in active_children() if p not in before])
            raise
        pool.shutdown()
        out = [done[i] for i in range(len(arglists))]
    bar.close()
    return out


def _worker_init() -> None:
    """A local worker's signals: SIGINT is ignored (a Ctrl-C reaches the parent, which stops the
    workers with SIGTERM); SIGTERM raises :class:`Terminated` in a job and ends an idle worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_sigterm)


def _worker_sigterm(signum: int, frame: FrameType | None) -> None:
    if _in_job:
        raise Terminated("SIGTERM")
    os._exit(128 + signum)


def _job(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a local worker; a job stopped by a signal unwinds (its ``finally`` blocks
    release its locks), then the worker exits without taking another job."""
    global _in_job
    _in_job = True
    try:
        return fn(*args)
    except (KeyboardInterrupt, Terminated) as exc:
        os._exit(exit_status(exc))
    finally:
        _in_job = False


def _stop_workers(pool: ProcessPoolExecutor, workers: list) -> None:
    """Cancel the jobs not started and send SIGTERM to the pool's worker processes; kill those
    still running after :data:`STOP_GRACE` seconds."""
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        process.terminate()
    deadline = time.monotonic() + STOP_GRACE
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in workers:
        if process.is_alive():
            process.kill()
            process.join()


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
                 runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}})
    remote = ray.remote(num_cpus=max(1, cpus), num_gpus=1 if cuda else 0, max_retries=0)(fn)
    refs = [remote.remote(*args) for args in arglists]
    index = {ref: i for i, ref in enumerate(refs)}
    bar = tqdm(total=len(refs), desc=f"{what} (ray)", unit="job", disable=not progress, dynamic_ncols=True)
    done: dict[Any, str] = {}
    remaining = refs
    try:
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
    except BaseException:  # stopped: a KeyboardInterrupt in each running task unwinds it (its locks released)
        for ref in remaining:
            ray.cancel(ref)
        raise
    bar.close()
    return [done[ref] for ref in refs]  # in argument order
