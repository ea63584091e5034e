"""The lock rule (bench/store/locks.py): an owner is live only when proven live (host, pid and
process start read back and matched; another host's lock while younger than the lease); every
other lock is taken over with one warning line, by exactly one of the runners racing for it."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.execute.cells import cells_of
from bench.execute.runner import run_grids
from bench.spec.grid import load_grid
from bench.store import RunStore, locks
from bench.store.locks import LEASE_SECONDS, FileLock, process_start

HOST = socket.gethostname()
OTHER_HOST = "elsewhere.invalid"


def owner(pid: int, start: str | None, host: str = HOST) -> bytes:
    return json.dumps({"host": host, "pid": pid, "start": start, "time": time.time()}).encode()


def _reaped() -> int:
    """The pid of a process that has exited (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _sleeper() -> int:
    """The pid of a process that runs until this test module ends (another live process)."""
    if not SLEEPER:
        SLEEPER.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]))
    return SLEEPER[0].pid


SLEEPER: list[subprocess.Popen] = []


@pytest.fixture(autouse=True, scope="module")
def _stop_the_sleeper() -> Iterator[None]:
    yield
    for proc in SLEEPER:
        proc.kill()
        proc.wait()


#: name -> (the lock's bytes, seconds since its last touch, the reason it is stale or None: live)
LOCKS: dict[str, tuple[Callable[[], bytes], float, str | None]] = {
    "random-bytes": (lambda: b"\xff" + os.urandom(63), 0, "unreadable bytes"),
    "empty": (lambda: b"", 0, "empty"),
    "truncated": (lambda: owner(os.getpid(), process_start(os.getpid()))[:30], 0, "truncated JSON"),
    "dead-pid": (lambda: owner(_reaped(), "unknown"), 0, "is not running on this host"),
    "pid-reused": (lambda: owner(_sleeper(), process_start(os.getpid())), 0, "is another process now"),
    "other-host-expired": (lambda: owner(1, "x", OTHER_HOST), LEASE_SECONDS + 60, f"host {OTHER_HOST}'s lock"),
    "other-host-fresh": (lambda: owner(1, "x", OTHER_HOST), 0, None),
    "other-live-runner": (lambda: owner(_sleeper(), process_start(_sleeper())), 0, None),
    "this-process": (lambda: owner(os.getpid(), process_start(os.getpid())), 0, None),
}


def plant(path: Path, name: str) -> bytes:
    """Write the lock :data:`LOCKS` names at ``path``; returns its bytes."""
    content, age, _ = LOCKS[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data := content())
    if age:
        os.utime(path, (time.time() - age,) * 2)
    return data


@pytest.mark.parametrize("name", LOCKS)
def test_a_lock_is_taken_over_only_when_its_owner_is_not_proven_live(name: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    store = RunStore(tmp_path)
    folder = store.cell_dir("c0ffee")
    before = plant(folder / "run.lock", name)
    why = LOCKS[name][2]
    assert store.status(folder)[0] == ("pending" if why else "running")
    lock = store.lock(folder)  # the claim run_cell makes
    assert lock.try_acquire() is (why is not None)
    err = capsys.readouterr().err.strip().splitlines()
    if why is None:
        assert err == [] and lock.path.read_bytes() == before and not lock.held
        return
    assert len(err) == 1 and str(lock.path) in err[0] and why in err[0], err
    assert lock.owner()["pid"] == os.getpid() and lock.owner()["start"] == process_start(os.getpid())
    assert store.status(folder)[0] == "running"
    lock.release()
    assert not lock.path.exists() and store.status(folder)[0] == "pending"


def test_a_held_lock_is_never_half_written_and_is_live(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "run.lock")
    assert lock.try_acquire()
    try:
        assert set(json.loads(lock.path.read_text())) >= {"host", "pid", "start", "time"}
        assert not FileLock(lock.path).try_acquire()  # not reentrant: a second claim in this process fails too
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    finally:
        lock.release()
    assert not lock.path.exists()


def test_release_leaves_a_lock_that_was_taken_over(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "run.lock")
    assert lock.try_acquire()
    lock.path.write_bytes(theirs := owner(_sleeper(), process_start(_sleeper())))
    lock.release()
    assert lock.path.read_bytes() == theirs


def test_the_holder_keeps_its_lock_fresh_for_other_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locks, "LEASE_SECONDS", 0.4)  # a touch every 0.1 s
    lock = FileLock(tmp_path / "run.lock")
    assert lock.try_acquire()
    os.utime(lock.path, (time.time() - 3600,) * 2)
    deadline = time.monotonic() + 30
    while time.time() - lock.path.stat().st_mtime > 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert time.time() - lock.path.stat().st_mtime < 60, "the heartbeat did not touch the lock"
    lock.release()
    assert not [t for t in threading.enumerate() if t.name == f"heartbeat {lock.path}"]


def test_acquire_takes_over_a_lock_whose_owner_dies_while_it_waits(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        path = tmp_path / "train.lock"
        path.write_bytes(owner(sleeper.pid, process_start(sleeper.pid)))
        lock = FileLock(path, poll=0.05)
        waiter = threading.Thread(target=lock.acquire, daemon=True)
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive() and not lock.held  # a live owner: it waits
    finally:
        sleeper.kill()
        sleeper.wait()
    waiter.join(30)
    assert not waiter.is_alive() and lock.held
    lock.release()


def _race(paths: list[str], barrier: Any, results: Any) -> None:
    """One runner: try every stale lock in turn, in step with the other runner; winners are held.
    Judging a lock takes 50 ms here (as on a slow shared filesystem), so both runners judge it
    stale before either takes it over."""
    running = locks._running
    locks._running = lambda pid: time.sleep(0.05) or running(pid)
    held = []
    for path in paths:
        barrier.wait()
        lock = FileLock(Path(path))
        if lock.try_acquire():
            held.append(lock)
    results.put((os.getpid(), [str(lock.path) for lock in held]))
    barrier.wait()  # every winner holds its lock until both runners have reported


def test_two_runners_taking_over_one_stale_lock_exactly_one_wins(tmp_path: Path) -> None:
    paths = [tmp_path / f"cell{i}" / "run.lock" for i in range(20)]
    dead = _reaped()
    for path in paths:
        path.parent.mkdir()
        path.write_bytes(owner(dead, "unknown"))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    runners = [ctx.Process(target=_race, args=([str(p) for p in paths], barrier, results)) for _ in range(2)]
    for runner in runners:
        runner.start()
    won = dict(results.get(timeout=120) for _ in runners)
    for runner in runners:
        runner.join(60)
    assert sorted(won) == sorted(r.pid for r in runners)
    for path in paths:
        winners = [pid for pid, mine in won.items() if str(path) in mine]
        assert len(winners) == 1, (path, won)
        assert json.loads(path.read_text())["pid"] == winners[0]


GRID = "study: locks\nprofile: smoke\ntasks: [denoise25]\nseeds: [0, 1]\ncells: [{label: scratch, method: scratch}]\n"


def test_the_runner_runs_a_cell_under_a_stale_lock_once_and_skips_a_live_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "g.yaml").write_text(GRID)
    grid = load_grid(tmp_path / "g.yaml")
    stale, live = (tmp_path / "runs" / "cells" / c.id for c in cells_of(grid))
    plant(stale / "run.lock", "random-bytes")
    kept = plant(live / "run.lock", "other-host-fresh")
    summary = run_grids([grid], tmp_path / "runs", progress=False)
    assert (summary.done, summary.busy) == (1, 1)
    err = [line for line in capsys.readouterr().err.splitlines() if "stale lock" in line]
    assert len(err) == 1 and str(stale / "run.lock") in err[0]
    assert json.loads((stale / "record.json").read_text())["status"] == "done" and not (stale / "run.lock").exists()
    assert (live / "run.lock").read_bytes() == kept and not (live / "record.json").exists()
