"""CLI habits: ``eval --save-images`` writes what was scored, ``train`` says where the weights are and
skips a finished run unless ``--force``, writing commands default outside the installed package, and
one ``--device`` default for every command that trains or scores."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import bench
import bench.commands.ship_teachers
import bench.commands.train
import bench.commands.tune
from bench.cli import build_parser, main
from bench.commands.argtypes import DEFAULT_DEVICE, job_device
from bench.store import stem_part
from skd_core.data import get_task, load_pairs
from skd_core.metrics import quantize
from skd_core.models import build_model
from skd_core.train.evaluate import centre_crop, restore

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(bench.__file__).resolve().parent


def test_eval_save_images_writes_the_quantised_output_of_every_test_image(tmp_path: Path, capsys) -> None:
    torch.manual_seed(1)
    model = build_model("student-smoke").eval()
    checkpoint = tmp_path / "net_g.pth"
    torch.save({"params": model.state_dict()}, checkpoint)
    out = tmp_path / "restored"
    assert main(["eval", "--model", "student-smoke", "--checkpoint", str(checkpoint), "--data", "embedded:denoise25",
                 "--max-side", "32", "--save-images", str(out), "--device", "cpu", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    pairs = load_pairs("embedded:denoise25", get_task("denoise25"))
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{stem_part(p.name)}.png" for p in pairs)
    assert record["images"] == {p.name: str(out / f"{stem_part(p.name)}.png") for p in pairs}
    for pair in pairs:
        expected = quantize(restore(model, centre_crop(pair.lq, 32))).astype(np.uint8)
        written = np.asarray(Image.open(out / f"{stem_part(pair.name)}.png"))
        assert written.dtype == np.uint8 and np.array_equal(written, expected), pair.name


def test_train_prints_the_weights_and_skips_a_finished_run_unless_force(tmp_path: Path, monkeypatch, capsys) -> None:
    runs = tmp_path / "runs"
    argv = ["train", "--profile", "smoke", "--method", "scratch", "--set", "student_train.steps=1",
            "--runs-dir", str(runs), "--device", "cpu"]
    assert main(argv) == 0
    [cell] = (runs / "cells").iterdir()
    weights = cell / "model.safetensors"
    assert f"weights: {weights}" in capsys.readouterr().out.splitlines() and weights.is_file()
    record = json.loads((cell / "record.json").read_text())

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(bench.commands.train, "run_student", refuse)
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"skipped: this student finished already, record {cell / 'record.json'} "
                        "(--force trains it again)")
    assert lines[-1] == f"weights: {weights}"
    assert main([*argv, "--json"]) == 0  # the notes go to stderr, stdout stays JSON
    out, err = capsys.readouterr()
    assert json.loads(out)["id"] == cell.name and "skipped" in err and f"weights: {weights}" in err

    seen = []

    def rerun(job, store, device, resume):
        seen.append(store.read_record(store.cell_dir(job.id())))
        store.write_record(store.cell_dir(job.id()), record)
        return record

    monkeypatch.setattr(bench.commands.train, "run_student", rerun)
    assert main([*argv, "--force"]) == 0
    assert seen == [None]  # --force cleared the finished record before training again
    assert "skipped" not in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["train"], ["eval", "--model", "m", "--checkpoint", "c", "--data", "embedded"],
                                  ["run", "grid.yaml"], ["tune", "spec.yaml"]], ids=lambda a: a[0])
def test_every_command_that_runs_a_model_has_the_one_device_default(argv: list[str]) -> None:
    assert build_parser([argv[0]]).parse_args(argv).device == DEFAULT_DEVICE == "auto"


def test_auto_is_cuda_when_there_is_one_and_ray_keeps_an_explicit_device() -> None:
    here = "cuda" if torch.cuda.is_available() else "cpu"
    assert job_device("auto") == job_device("auto", "ray") == here
    assert job_device("cpu") == "cpu" and job_device("cuda:1", "ray") == "cuda:1"


def _stub_tune(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """``tune`` with its search and files stubbed: the tuned-options paths it would write."""
    written: list[Path] = []
    spec = SimpleNamespace(name="kd", profile=SimpleNamespace(name="smoke"), task="denoise25", trials=1, split="val",
                           space={})
    monkeypatch.setattr(bench.commands.tune, "load_spec", lambda *args: spec)
    monkeypatch.setattr(bench.commands.tune, "search", lambda *args, **kwargs: SimpleNamespace(history=[], results={}))
    monkeypatch.setattr(bench.commands.tune, "write_history", lambda path, rows: path)
    monkeypatch.setattr(bench.commands.tune, "tuned_entries", lambda spec, result: ({}, {}))
    monkeypatch.setattr(bench.commands.tune, "write_tuned", lambda path, *entries: written.append(path))
    return written


def test_tune_writes_the_tuned_options_into_the_runs_folder_unless_told(tmp_path: Path, monkeypatch) -> None:
    written = _stub_tune(monkeypatch)
    runs = tmp_path / "runs"
    base = ["tune", "spec.yaml", "--runs-dir", str(runs), "--out", str(tmp_path / "results"), "--no-progress",
            "--device", "cpu"]
    assert main(base) == 0
    assert main([*base, "--tuned-dir", str(tmp_path / "committed")]) == 0
    assert written == [runs / "tuned" / "smoke.yaml", tmp_path / "committed" / "smoke.yaml"]
    assert not written[0].resolve().is_relative_to(PACKAGE)


def test_ship_teachers_copies_into_the_current_directory_unless_told(tmp_path: Path, monkeypatch) -> None:
    roots = []
    monkeypatch.setattr(bench.commands.ship_teachers, "ship",
                        lambda store, tid, profile, task, command, root, force: roots.append(root) or root / task)
    monkeypatch.chdir(tmp_path)
    base = ["ship-teachers", "--profile", "smoke", "--tasks", "denoise25", "--runs-dir", "runs"]
    assert main(base) == 0 and main([*base, "--out", "results/teachers"]) == 0
    assert roots == [Path("teachers"), Path("results/teachers")]
    assert roots[0].resolve() == tmp_path / "teachers"


def test_the_cpu_nox_sessions_run_on_the_cpu() -> None:
    spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)
    runs = []
    session = SimpleNamespace(posargs=[], install=lambda *args: None, run=lambda *args: runs.append(args))
    noxfile._run_and_report(session, noxfile.DEFAULT_STUDIES)
    [command] = [r for r in runs if r[:2] == ("skd-bench", "run")]
    assert command[command.index("--device") + 1] == "cpu"
    session.posargs = ["--device", "cuda"]  # a caller's own device is kept
    noxfile._run_and_report(session, noxfile.DEFAULT_STUDIES)
    assert runs[-2].count("--device") == 1 and runs[-2][runs[-2].index("--device") + 1] == "cuda"
