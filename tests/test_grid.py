"""Grid specs, the runner's resumability under SIGKILL, concurrent runners and the Ray executor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.execute.cells import cells_of
from bench.execute.runner import grid_status, run_grids
from bench.spec.grid import load_grid
from skd_core.errors import ConfigError

GRID = """
study: tiny
profile: smoke
tasks: [denoise25]
seeds: [0, 1]
base: {method: skd}
axes:
  options.mca_dims: [none, both]
"""


def write(tmp_path: Path, text: str, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def records(runs: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (runs / "cells").glob("*/record.json")}


def test_expansion_labels_and_reference(tmp_path: Path):
    grid = load_grid(write(tmp_path, GRID))
    assert grid.labels() == ["mca_dims=none", "mca_dims=both", "scratch"]
    cells = cells_of(grid)
    assert len(cells) == 6 and len({c.id for c in cells}) == 6
    assert {c.job.options["mca_dims"] for c in cells if c.label != "scratch"} == {"none", "both"}
    assert "mca_dims" not in cells[-1].job.options  # scratch: its own (empty) options


def test_axis_over_a_profile_override_and_train_teacher(tmp_path: Path):
    from bench.execute.manifest import manifest

    grid = load_grid(write(tmp_path, "study: budget\nprofile: smoke\ntasks: [denoise25]\nseeds: [0]\n"
                                     "train_teacher: true\nreference: false\nbase: {method: scratch}\naxes:\n"
                                     "  student: [student-smoke, teacher-smoke]\n"
                                     "  profile_overrides.student_train.steps: [2, 4]\n"))
    assert grid.train_teacher and grid.labels() == ["student=student-smoke, steps=2", "student=student-smoke, steps=4",
                                                    "student=teacher-smoke, steps=2", "student=teacher-smoke, steps=4"]
    cells = cells_of(grid)
    assert [c.job.profile.student_train.steps for c in cells] == [2, 4, 2, 4]
    assert [c.job.profile.student_train.batch for c in cells] == [2] * 4  # the rest of the schedule kept
    rows = manifest(grid, cells)["cells"]
    assert len({c.id for c in cells}) == 4 and len({r["teacher_id"] for r in rows}) == 1  # one teacher per task
    assert rows[0]["axes"] == {"student": "student-smoke", "profile_overrides.student_train.steps": 2}
    plain = load_grid(write(tmp_path, GRID))
    assert [r["teacher_id"] is None for r in manifest(plain, cells_of(plain))["cells"]] == [False] * 4 + [True] * 2


def test_parsing_a_grid_imports_no_training_stack():
    code = ("import sys, bench.spec.grid, bench.report; "
            "bad = sorted(m for m in sys.modules if m.startswith(('skd_core.methods', 'skd_core.losses', "
            "'skd_core.taps', 'skd_core.train', 'skd_core.data', 'bench.execute', 'torch'))); "
            "print(bad); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)


@pytest.mark.parametrize("bad,expected", [
    ("seeds: [0, 1]\naxis: {method: [skd]}", r"tiny.yaml.*unknown grid key 'axis'.*did you mean 'axes'"),
    ("axes: {options.mca_dim: [none]}", r"tiny.yaml.*distillation option 'mca_dim'.*did you mean 'mca_dims'"),
    ("cells: [{method: fitnet, options: {alpha1: 1}}]", r"tiny.yaml: cell 'fitnet'.*option 'alpha1' in options of "
                                                        r"method 'fitnet'"),
    ("seeds: [true]", r"tiny.yaml.*'seeds' must be a non-empty list of distinct integers"),
    ("axes: {option.mca_dims: [none]}", r"tiny.yaml.*did you mean 'options'"),
    ("base: {method: skd, options: {sigma: -1}}", r"tiny.yaml.*sigma.*must be > 0"),
    ("base: {method: skd, options: {extractor: vgg19}}", r"tiny.yaml.*vgg19.*vgg_weights"),
    ("seeds: 3", r"tiny.yaml.*'seeds' must be a list"),
    ("base: {method: kd}", r"tiny.yaml.*unknown distillation method 'kd'"),
    ("base: {student: student-tiny}", r"tiny.yaml.*unknown model preset"),
    ("profile_overrides: {student_train: {step: 3}}", r"tiny.yaml.*unknown train key 'step'.*'steps'"),
    ("tasks: [denoise24]", r"tiny.yaml.*unknown task 'denoise24'"),
])
def test_invalid_specs_name_file_key_and_closest(tmp_path: Path, bad: str, expected: str):
    with pytest.raises(ConfigError, match=expected):
        cells_of(load_grid(write(tmp_path, f"study: tiny\nprofile: smoke\n{bad}\n")))


def test_missing_grid_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="grid file not found: .*nope.yaml"):
        load_grid(tmp_path / "nope.yaml")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench", *args]


@pytest.mark.slow
def test_sigkill_mid_grid_then_resume(tmp_path: Path):
    spec, runs = write(tmp_path, GRID), tmp_path / "runs"
    proc = subprocess.Popen(_cli("run", str(spec), "--runs-dir", str(runs), "--no-progress"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and len(records(runs)) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = records(runs)
    assert 2 <= len(before) < 6, "the kill should land mid-grid"
    assert all(r["status"] == "done" for r in before.values())  # every record that exists is whole
    out = subprocess.run(_cli("run", str(spec), "--runs-dir", str(runs), "--no-progress", "--json"),
                         capture_output=True, text=True, check=True)
    summary = json.loads(out.stdout)
    after = records(runs)
    assert len(after) == 6 and summary["already_done"] == len(before)
    assert summary["done"] == 6 - len(before)
    for cid, rec in before.items():  # finished cells were not run again
        assert after[cid]["finished"] == rec["finished"]
    assert all(row["status"] == "done" for row in grid_status(load_grid(spec), runs))


@pytest.mark.slow
def test_two_runners_never_run_a_cell_twice(tmp_path: Path):
    spec, runs = write(tmp_path, GRID), tmp_path / "runs"
    # one worker each, pinned to one CPU each (the runner sizes its threads by its affinity): two
    # runners contend for the cells without oversubscribing the machine
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs os.sched_setaffinity (Linux) to pin each runner to one CPU")
    cpus = sorted(os.sched_getaffinity(0))
    pins = [cpus[i % len(cpus)] for i in range(2)]
    procs = [subprocess.Popen(_cli("run", str(spec), "--runs-dir", str(runs), "--no-progress", "--json",
                                   "--workers", "1"),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              preexec_fn=lambda cpu=cpu: os.sched_setaffinity(0, {cpu}))
             for cpu in pins]
    summaries = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    assert sum(s["done"] for s in summaries) == 6  # each cell run by exactly one runner
    assert len(records(runs)) == 6


@pytest.mark.slow
@pytest.mark.ray
def test_ray_executor_gives_the_local_records(tmp_path: Path):
    ray = pytest.importorskip("ray")
    spec = write(tmp_path, GRID.replace("seeds: [0, 1]", "seeds: [0]"))
    grid = load_grid(spec)
    run_grids([grid], tmp_path / "local", progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_grids([grid], tmp_path / "ray", executor="ray", progress=False)
    finally:
        ray.shutdown()
    assert summary.done == 3 and summary.failed == 0
    local, remote = records(tmp_path / "local"), records(tmp_path / "ray")
    assert local.keys() == remote.keys()
    for cid in local:
        assert local[cid]["metrics"] == remote[cid]["metrics"]
        assert local[cid]["training"]["history"] == remote[cid]["training"]["history"]


def test_failed_cell_is_recorded_and_grid_goes_on(tmp_path: Path):
    spec = write(tmp_path, GRID.replace("seeds: [0, 1]", "seeds: [0]")
                 + "cells:\n  - {label: broken, method: fitnet, options: {taps: [encoder_level9]}}\n")
    grid = load_grid(spec)
    summary = run_grids([grid], tmp_path / "runs", progress=False)
    assert summary.failed == 1 and summary.done == 3
    rows = {r["label"]: r for r in grid_status(grid, tmp_path / "runs")}
    assert rows["broken"]["status"] == "failed" and "encoder_level9" in rows["broken"]["error"]


@pytest.mark.slow
def test_smoke_grid_end_to_end_with_report(tmp_path: Path):
    spec, runs, out = write(tmp_path, GRID.replace("seeds: [0, 1]", "seeds: [0, 1, 2]")), tmp_path / "runs", \
        tmp_path / "results"
    for command in (["run", str(spec), "--workers", "2"], ["report", str(spec), "--out", str(out)]):
        subprocess.run(_cli(*command, "--runs-dir", str(runs)), check=True, capture_output=True)
    table = (out / "tiny" / "tables" / "summary.md").read_text()
    for label in ("mca_dims=none", "mca_dims=both", "scratch", "teacher"):
        assert label in table
    assert "3/3" in table  # seeds aggregated
    for figure in ("ablation", "training", "speedup"):
        assert (out / "tiny" / "figures" / f"{figure}.png").stat().st_size > 1000
    assert not (out / "tiny" / "figures" / "pareto.png").exists()  # every student has the same MACs
    assert "tiny/README.md" in (out / "README.md").read_text()


def test_run_key_ignores_what_only_presents_a_run(tmp_path: Path):
    key = load_grid(write(tmp_path, GRID)).run_key()
    assert load_grid(write(tmp_path, GRID + "description: other words\nreport: {qualitative: {max_images: 1}}\n")
                     ).run_key() == key
    assert load_grid(write(tmp_path, GRID.replace("seeds: [0, 1]", "seeds: [0]"))).run_key() != key


def test_a_worker_refuses_a_cell_whose_id_changed(tmp_path: Path):
    from bench.execute.runner import run_cell

    cell = cells_of(load_grid(write(tmp_path, GRID)))[0]
    stale = "0" * 16  # the id the runner computed before, say, a source edit
    assert run_cell(cell.job, stale, tmp_path / "runs", "cpu", 1, False, False) == "failed"
    record = json.loads((tmp_path / "runs" / "cells" / stale / "record.json").read_text())
    assert record["status"] == "failed" and f"resolves to id {cell.id}" in record["error"]
    assert not (tmp_path / "runs" / "cells" / cell.id).exists()  # nothing written under the other id
