"""Executors: run one function over many argument lists, in this process, in spawned local worker
processes, or as Ray tasks; results come back in argument order.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm import tqdm

from skd_core.errors import ConfigError

EXECUTORS = ("local", "ray")


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
                 runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}})
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
