"""``skd-bench tune``: a seeded equal-budget search writes the tuned options and the history, the
profile reads them, no test image is read, a SIGKILLed search resumes without rerunning a finished
trial, and bad specs are one clear error. Smoke profile; one search per module shared by the tests."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

import skd_core.data.embedded as embedded
from bench.cli import main
from bench.execute.cells import Cell, StudentJob
from bench.execute.manifest import manifest, tuned_options
from bench.execute.teachers import ensure_teacher
from bench.report.conventions import weights_text
from bench.report.records import GridRun, ManifestCell
from bench.spec.grid import QualitativeOptions, load_grid
from bench.spec.profiles import untuned_profile, with_tuned
from bench.spec.tuned import read_tuned
from bench.store import RunStore
from bench.tune.search import study_name
from bench.tune.spec import load_spec
from skd_core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SPACE = "  output_kd: {output_kd_weight: {low: 0.1, high: 10.0, log: true}}\n" \
        "  at: {at_weight: {low: 10.0, high: 10000.0, log: true}}\n"


def write_spec(folder: Path, name: str, trials: int, space: str = SPACE) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\nprofile: smoke\ntask: denoise25\nseed: 0\nsampler_seed: 3\ntrials: {trials}\n"
                    f"metric: psnr\nsplit: val\nspace:\n{space}")
    return path


def tune_args(spec: Path, root: Path, runs: Path) -> list[str]:
    return ["tune", str(spec), "--runs-dir", str(runs), "--tuned-dir", str(root / "tuned"),
            "--out", str(root / "results"), "--no-progress", "--json"]


def history(root: Path, name: str) -> list[dict[str, str]]:
    with (root / "results" / "tuning" / f"{name}_trials.csv").open() as f:
        return list(csv.DictReader(f))


def done_cells(runs: Path) -> dict[str, dict]:
    records = {p.parent.name: json.loads(p.read_text()) for p in (runs / "cells").glob("*/record.json")}
    return {cid: r for cid, r in records.items() if r["status"] == "done"}


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 2 methods x 2 trials search, run with every read of a test image's pixels refused (after
    the teacher, whose own record scores the test split, was trained)."""
    root = tmp_path_factory.mktemp("tune")
    runs = root / "runs"
    ensure_teacher(untuned_profile("smoke"), "denoise25", 0, RunStore(runs).writable(), progress=False)
    original, reads = embedded._pixels, []

    def guarded(name: str):
        split = next(e.split for e in embedded.EMBEDDED if e.name == name)
        reads.append(split)
        if split == "test":
            raise RuntimeError(f"test image {name} read while tuning")
        return original(name)

    spec = write_spec(root, "pair", trials=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(embedded, "_pixels", guarded)
        code = main(tune_args(spec, root, runs))
    return {"root": root, "runs": runs, "spec": spec, "code": code, "reads": reads}


def test_search_writes_tuned_options_and_history(searched: dict) -> None:
    root, runs = searched["root"], searched["runs"]
    assert searched["code"] == 0
    rows = history(root, "pair")
    assert [(r["method"], r["state"], r["counted"]) for r in rows] == [("output_kd", "COMPLETE", "True")] * 2 + \
        [("at", "COMPLETE", "True")] * 2
    cells = done_cells(runs)
    for row in rows:  # each trial is a cell of its own, scored on the validation crops
        record = cells[row["cell_id"]]
        assert record["config"]["split"] == "val" and set(record["data"]) == {"train", "val"}
        assert float(row["value_dB"]) == pytest.approx(record["metrics"]["psnr"], abs=1e-5)
        assert record["teacher"]["metrics"] is None  # the teacher's test scores stay out of a trial
        assert {p["name"] for p in record["metrics"]["per_image"]} == {e.name for e in embedded.embedded_images("val")}
    tuned = read_tuned(root / "tuned" / "smoke.yaml")
    for method in ("output_kd", "at"):
        best = max((r for r in rows if r["method"] == method), key=lambda r: float(r["value_dB"]))
        assert tuned.options[method] == json.loads(best["params"])
        p = tuned.tuning[method]
        assert (p["trials"], p["split"], p["val_images"], p["task"], p["budget"]["steps"]) == \
            (2, "val", 11, "denoise25", untuned_profile("smoke").student_train.steps)
    assert (root / "tuned" / "smoke.yaml").read_text().startswith("# Tuned distillation options of profile 'smoke'")


def test_trials_never_read_a_test_image(searched: dict) -> None:
    assert searched["code"] == 0 and "val" in searched["reads"] and "test" not in searched["reads"]


def test_the_profile_reads_the_tuned_file(searched: dict) -> None:
    tuned = read_tuned(searched["root"] / "tuned" / "smoke.yaml")
    profile = with_tuned(untuned_profile("smoke"), searched["root"] / "tuned")
    assert profile.method_options == tuned.options and profile.tuning["at"]["options"] == tuned.options["at"]
    job = StudentJob.create(profile, method="at")
    assert job.options["at_weight"] == tuned.options["at"]["at_weight"]
    assert job.id() != StudentJob.create(untuned_profile("smoke"), method="at").id()  # new values, new cells
    explicit = StudentJob.create(profile, method="at", options={"at_weight": 1000.0})  # a grid's own option wins
    assert explicit.id() == StudentJob.create(untuned_profile("smoke"), method="at").id()
    assert tuned_options(job) == ["at_weight"] and tuned_options(explicit) == []


def test_manifest_and_caption_state_how_methods_were_tuned(searched: dict, tmp_path: Path) -> None:
    profile = with_tuned(untuned_profile("smoke"), searched["root"] / "tuned")
    (tmp_path / "g.yaml").write_text("study: g\nprofile: smoke\nseeds: [0]\ncells: [{method: at}, {method: fitnet}]\n")
    grid = load_grid(tmp_path / "g.yaml")
    cells = [Cell(m, "denoise25", 0, StudentJob.create(profile, method=m), {}) for m in ("at", "fitnet", "scratch")]
    data = manifest(grid, cells)
    assert [r["tuned"] for r in data["cells"]] == [["at_weight"], [], []] and list(data["tuning"]) == ["at"]

    def run(rows: list[dict], tuning: dict) -> GridRun:
        manifest_cells = [ManifestCell(r["id"], r["label"], "denoise25", 0, r["method"], "s", "t", {}, r["options"],
                                       (64, 64), {}, tuned=tuple(r["tuned"])) for r in rows]
        return GridRun("g", "", grid.path, "smoke", ["denoise25"], [0], {}, manifest_cells, {}, QualitativeOptions(),
                       RunStore(tmp_path / "runs"), tuning)

    steps = untuned_profile("smoke").student_train.steps
    assert weights_text(run(data["cells"], data["tuning"])) == (
        f"Weights: methods at tuned by seeded random search (TPE's start-up trials), 2 trials each on the validation "
        f"split (11 crops) of "
        f"denoise25, budget {steps} steps; fitnet: literature/default weights, untuned.")
    tpe = {"at": {**data["tuning"]["at"], "trials": 8, "startup_trials": 3}}
    assert "at tuned by TPE, 8 trials each (the first 3 random) on the validation split" in weights_text(
        run(data["cells"], tpe))
    assert weights_text(run(data["cells"], {})) == "Weights: literature/default weights, untuned."
    assert weights_text(run(data["cells"][2:], {})) == ""  # scratch only: no weights to state


def test_same_seed_asks_the_same_trials_and_reuses_their_cells(searched: dict, tmp_path: Path) -> None:
    root, runs = searched["root"], searched["runs"]
    before = done_cells(runs)
    again = write_spec(tmp_path, "pair_again", trials=2)  # a new storage, the same search
    assert main(tune_args(again, tmp_path, runs)) == 0
    rows = history(tmp_path, "pair_again")
    assert [(r["params"], r["cell_id"], r["value_dB"]) for r in rows] == \
        [(r["params"], r["cell_id"], r["value_dB"]) for r in history(root, "pair")]
    assert done_cells(runs) == before  # every cell found in the run store: none trained again


@pytest.mark.slow
def test_sigkill_mid_search_then_resume(searched: dict, tmp_path: Path) -> None:
    runs = searched["runs"]
    spec = write_spec(tmp_path, "killed", trials=3, space="  output_kd: {output_kd_weight: {low: 0.01, high: 0.1}}\n")
    before = done_cells(runs)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "bench", *tune_args(spec, tmp_path, runs)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and len(done_cells(runs)) == len(before):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = {cid: r for cid, r in done_cells(runs).items() if cid not in before}
    assert len(first) == 1, "the kill should land after the first trial's cell and before the last"

    assert main(tune_args(spec, tmp_path, runs)) == 0
    study = optuna.load_study(study_name=study_name(load_spec(spec), "output_kd"),
                              storage=f"sqlite:///{runs / 'tuning' / 'killed.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3
    assert all("error" not in t.user_attrs for t in study.trials)  # at most the interrupted trial failed
    [(cid, record)] = first.items()
    assert cid in {t.user_attrs["cell"] for t in complete}
    assert done_cells(runs)[cid]["finished"] == record["finished"]  # the finished trial was not rerun
    assert len([r for r in history(tmp_path, "killed") if r["state"] == "COMPLETE"]) == 3


def test_shipped_tuning_specs_are_valid() -> None:
    specs = sorted((ROOT / "ablations" / "tuning").glob("*.yaml"))
    assert specs
    for path in specs:
        spec = load_spec(path)
        assert spec.split == "val" and spec.trials >= 1 and spec.name == path.stem


def test_a_bad_tuned_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "smoke.yaml"
    path.write_text("options: {skd: {alpah2: 0.1}}\ntuning: {}\n")
    with pytest.raises(ConfigError, match=rf"tuned options file {re.escape(str(path))}: .*'alpah2'.*'alpha2'"):
        read_tuned(path)


@pytest.mark.parametrize("body, expected", [
    ("trials: 2\nspace: {skd: {alpah2: {low: 0.01, high: 1.0}}}",
     r"space\.skd\.alpah2: unknown option of method 'skd'; did you mean 'alpha2'\?"),
    ("trials: 2\nspace: {at: {at_weight: {low: 10.0, high: 10.0}}}",
     r"space\.at\.at_weight: empty or inverted range: low 10\.0 must be < high 10\.0"),
    ("trials: 0\nspace: {at: {at_weight: {low: 1.0, high: 10.0}}}", r": trials: must be an integer >= 1, got 0"),
    ("trials: 2\nspace: {at: {at_weight: {low: 0, high: 10.0, log: true}}}",
     r"space\.at\.at_weight\.low: a log range needs low > 0, got 0"),
    ("trials: 2\nspace: {skd: {sigma: {low: 0.0, high: 1.0}}}", r"space\.skd\.sigma\.low: option 'sigma' must be > 0"),
    ("trials: 2\nspace: {skd: {temperature: {choices: [0.1, -1.0]}}}",
     r"space\.skd\.temperature\.choices\[1\]: option 'temperature' must be > 0"),
    ("trials: 2\nspace: {skd: {mca_dims: {low: 0.0, high: 1.0}}}", r"space\.skd\.mca_dims: .*not a number"),
    ("trials: 2\nspace: {kd: {w: {low: 0.1, high: 1.0}}}",
     r"space\.kd: unknown distillation method; did you mean"),
    ("trails: 2\nspace: {at: {at_weight: {low: 1.0, high: 10.0}}}", r": trails: unknown key; did you mean 'trials'\?"),
    ("trials: 2\nspace: {at: {at_weight: {low: 1.0, hgh: 10.0}}}",
     r"space\.at\.at_weight\.hgh: unknown key; did you mean 'high'\?"),
    ("trials: 2\nspace: {scratch: {}}", r"space\.scratch: method 'scratch' has no options to tune"),
    ("trials: 2\nsplit: test\nspace: {at: {at_weight: {low: 1.0, high: 10.0}}}", r"split: 'test' cannot be tuned on"),
])
def test_bad_spec_is_one_error_naming_the_key(body: str, expected: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(f"profile: smoke\n{body}\n")
    code = main(["tune", str(spec), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"skd-bench tune: error: tuning spec {spec}: ")
    assert re.search(expected, err), err
    assert not (tmp_path / "runs").exists()  # refused before anything was written
