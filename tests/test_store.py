"""Run-store faults: a corrupt record, an unwritable or misnamed runs folder, a non-finite metric, an
unreadable lock, ``--only`` matching nothing. Each gets one line naming the file or key, no finished
record changes, ``run`` then finishes every remaining cell and ``status`` shows the truth."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main

GRID = """\
study: store
profile: smoke
tasks: [denoise25]
seeds: [0, 1]
base: {method: skd}
axes: {options.mca_dims: [none]}
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder where the tiny grid (2 SKD cells, 2 scratch cells, a teacher) has finished."""
    root = tmp_path_factory.mktemp("finished")
    (root / "store.yaml").write_text(GRID)
    assert main(["run", str(root / "store.yaml"), "--runs-dir", str(root / "runs"), "--no-progress"]) == 0
    return root


@pytest.fixture
def runs(finished: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the finished runs folder (``spec`` beside it as ``store.yaml``)."""
    shutil.copy(finished / "store.yaml", tmp_path / "store.yaml")
    shutil.copytree(finished / "runs", tmp_path / "runs")
    yield tmp_path / "runs"


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _status(capsys: pytest.CaptureFixture[str], runs: Path) -> dict[str, dict]:
    code, out, _ = _cli(capsys, "status", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--json")
    assert code == 0
    return {r["id"]: r for r in json.loads(out[out.index("["):])}


def _records(runs: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in runs.rglob("record.json")}


def _cell(runs: Path, capsys: pytest.CaptureFixture[str], label: str = "mca_dims=none", seed: int = 1) -> Path:
    row = next(r for r in _status(capsys, runs).values() if r["label"] == label and r["seed"] == seed)
    return runs / "cells" / row["id"]


@pytest.mark.parametrize("damage", ["truncated", "empty", "a list"])
def test_corrupt_record_is_shown_set_aside_and_redone(runs: Path, capsys, damage: str) -> None:
    cell = _cell(runs, capsys)
    record = cell / "record.json"
    good = json.loads(record.read_text())
    others = {p: b for p, b in _records(runs).items() if p != record}
    if damage == "truncated":
        os.truncate(record, 300)
    else:
        record.write_text("" if damage == "empty" else "[]")
    row = _status(capsys, runs)[cell.name]
    assert row["status"] == "corrupt" and str(record) in row["error"]
    code, _, err = _cli(capsys, "report", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--out",
                        str(runs.parent / "results"))
    assert code == 0, err
    table = pd.read_csv(runs.parent / "results" / "store" / "tables" / "summary.csv").set_index("label")
    assert table.loc["mca_dims=none", "n_done"] == 1  # the corrupt cell is not counted as finished
    code, _, err = _cli(capsys, "run", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--no-progress")
    assert code == 0 and f"corrupt record {record}" in err and "set aside" in err
    assert json.loads(record.read_text())["metrics"] == good["metrics"]  # redone, bit for bit
    assert len(list(cell.glob("record.json.corrupt-*"))) == 1
    assert {p: p.read_bytes() for p in others} == others  # no finished record changed
    assert {r["status"] for r in _status(capsys, runs).values()} == {"done"}


def test_force_only_id_on_a_corrupt_record(runs: Path, capsys) -> None:
    cell = _cell(runs, capsys)
    (cell / "record.json").write_text("{")
    code, out, err = _cli(capsys, "run", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--no-progress",
                          "--force", "--only", f"id={cell.name}", "--json")
    assert code == 0, err
    assert json.loads(out)["done"] == 1 and _status(capsys, runs)[cell.name]["status"] == "done"


def test_corrupt_teacher_record_is_set_aside_and_the_teacher_redone(runs: Path, capsys) -> None:
    teacher = next((runs / "teachers").iterdir())
    (teacher / "record.json").write_text("")
    cell = _cell(runs, capsys)
    (cell / "record.json").unlink()
    code, _, err = _cli(capsys, "run", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--no-progress")
    assert code == 0, err
    assert json.loads((teacher / "record.json").read_text())["status"] == "done"
    assert len(list(teacher.glob("record.json.corrupt-*"))) == 1


def test_non_finite_metric_is_a_failed_cell_never_averaged(runs: Path, capsys) -> None:
    cell = _cell(runs, capsys)
    record = json.loads((cell / "record.json").read_text())
    record["metrics"]["psnr"] = math.nan
    (cell / "record.json").write_text(json.dumps(record))
    row = _status(capsys, runs)[cell.name]
    assert row["status"] == "failed" and "non-finite metric psnr=nan" in row["error"]
    assert _cli(capsys, "report", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--out",
                str(runs.parent / "results"))[0] == 0
    table = pd.read_csv(runs.parent / "results" / "store" / "tables" / "summary.csv").set_index("label")
    other = json.loads((_cell(runs, capsys, seed=0) / "record.json").read_text())["metrics"]["psnr"]
    assert table.loc["mca_dims=none", "n_done"] == 1
    assert table.loc["mca_dims=none", "psnr_mean"] == pytest.approx(other, abs=1e-4)  # the CSV keeps 4 decimals
    code, _, err = _cli(capsys, "run", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--no-progress")
    assert code == 0, err
    assert math.isfinite(json.loads((cell / "record.json").read_text())["metrics"]["psnr"])


@pytest.mark.parametrize("content", ["", "{\"host\": "])
def test_unreadable_lock_is_stale_after_a_bounded_wait(runs: Path, capsys, content: str) -> None:
    cell = _cell(runs, capsys)
    (cell / "record.json").unlink()
    lock = cell / "run.lock"
    lock.write_text(content)  # what a SIGKILL between creating and writing the lock leaves
    assert _status(capsys, runs)[cell.name]["status"] == "running"  # its owner may still be writing it
    old = time.time() - 60
    os.utime(lock, (old, old))
    assert _status(capsys, runs)[cell.name]["status"] == "pending"
    code, out, err = _cli(capsys, "run", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--no-progress",
                          "--json")
    assert code == 0 and json.loads(out)["done"] == 1, err
    assert _status(capsys, runs)[cell.name]["status"] == "done" and not lock.exists()


def test_runs_dir_that_is_a_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "store.yaml").write_text(GRID)
    (tmp_path / "runs").write_text("not a folder")
    for command in ("run", "status", "report"):
        code, _, err = _cli(capsys, command, str(tmp_path / "store.yaml"), "--runs-dir", str(tmp_path / "runs"))
        assert code == 2 and len(err.strip().splitlines()) == 1, (command, err)
        assert f"runs folder {tmp_path / 'runs'} is a file" in err


def test_unwritable_runs_folder(runs: Path, capsys) -> None:
    before = _records(runs)
    if subprocess.run(["chattr", "+i", str(runs)], capture_output=True).returncode != 0:
        if os.geteuid() == 0:
            pytest.skip("root without chattr: no way to make a folder unwritable here")
        runs.chmod(0o555)
    try:
        code, _, err = _cli(capsys, "run", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--no-progress")
    finally:
        subprocess.run(["chattr", "-i", str(runs)], capture_output=True)
        runs.chmod(0o755)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"runs folder {runs} is not writable" in err
    assert _records(runs) == before


def test_only_matching_no_cell(runs: Path, capsys) -> None:
    code, _, err = _cli(capsys, "run", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--only", "seed=99")
    assert code == 2 and "--only seed=99 matches no cell" in err and "store.yaml" in err
