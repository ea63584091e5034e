"""Real SIGTERM and SIGINT sent to ``python -m bench run`` mid-cell: the runner stops soon, exits
143 / 130 with one line on what is finished, leaves no lock and no partial record (its workers
neither), and a rerun finishes only the unfinished cells."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.cli import main
from bench.store.locks import pid_alive

GRID = "study: signals\nprofile: smoke\ntasks: [denoise25]\nseeds: [0, 1]\ncells: [{label: scratch, method: scratch}]\n"
REPO = Path(__file__).resolve().parents[1]
LOCK_NAMES = ("run.lock", "train.lock", "index.lock")


def _workers(pid: int) -> list[int]:
    """The spawned worker processes of ``pid`` (not its resource tracker; Linux, empty elsewhere)."""
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        return [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
    except OSError:
        return []


def _wait_for(ready: Callable[[], object], proc: subprocess.Popen, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert proc.poll() is None, "the run ended before the signal was sent"
        assert time.monotonic() < deadline, "the run never reached the state to signal it in"
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "workers"), [(signal.SIGTERM, 1), (signal.SIGINT, 2)],
                         ids=["SIGTERM-1-worker", "SIGINT-2-workers"])
def test_a_signal_mid_cell_stops_the_run_cleanly_and_a_rerun_resumes(sig: signal.Signals, workers: int,
                                                                      tmp_path: Path) -> None:
    (tmp_path / "g.yaml").write_text(GRID)
    runs = tmp_path / "runs"
    argv = ["run", str(tmp_path / "g.yaml"), "--runs-dir", str(runs), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(tmp_path / "stderr", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "bench", *argv, "--workers", str(workers)], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        if workers == 1:  # the first cell finished, the second running
            _wait_for(lambda: list(runs.glob("cells/*/record.json")) and list(runs.glob("cells/*/run.lock")), proc)
        else:  # both cells running, one in each worker process
            _wait_for(lambda: len(list(runs.glob("cells/*/run.lock"))) == 2, proc)
        workers_pids = _workers(proc.pid)
        assert len(workers_pids) == (workers if workers > 1 and Path("/proc/self").exists() else 0)
        finished = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in runs.glob("cells/*/record.json")}
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    lines = (tmp_path / "stderr").read_text().strip().splitlines()
    assert code == 128 + sig, lines
    assert f"stopped by {sig.name} with {len(finished)} of 2 cells finished" in lines[-1], lines
    assert "run the same command again" in lines[-1]
    assert not [pid for pid in workers_pids if pid_alive(pid)], "a worker process outlived the run"
    assert [p for p in runs.rglob("*") if p.name in LOCK_NAMES] == []
    assert [p for p in runs.rglob("*.tmp")] == []  # no half-written file
    for record in runs.rglob("record.json"):  # every record there is complete
        assert json.loads(record.read_text())["status"] == "done"
    assert len(list(runs.glob("cells/*/record.json"))) == len(finished)

    assert main(argv) == 0
    records = {p: json.loads(p.read_text()) for p in runs.glob("cells/*/record.json")}
    assert len(records) == 2 and {r["status"] for r in records.values()} == {"done"}
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in finished} == finished  # not retrained
