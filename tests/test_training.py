"""Training: seeded determinism, exact resume after an interruption, non-finite loss, teachers."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import Dataset

from bench.execute.cells import StudentJob
from bench.execute.students import run_student
from bench.execute.teachers import ensure_teacher
from bench.spec.profiles import get_profile
from bench.store import RunStore
from skd_core.data import embedded_images, train_crops
from skd_core.methods import build_distiller
from skd_core.models import CheckpointError, build_model
from skd_core.train.config import TrainConfig
from skd_core.train.loop import NonFiniteLossError, fit
from skd_core.train.schedule import lr_factor

CFG = TrainConfig(steps=6, batch=2, crop=32, lr=1e-3, checkpoint_every=2)


class Interrupt(Exception):  # noqa: N818 -- stands for a kill, not an error
    pass


class CrashAt(Dataset):
    """Wraps a dataset and raises when item ``index`` is read, as a killed run would stop."""

    def __init__(self, data: Dataset, index: int) -> None:
        self.data, self.index = data, index

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        if i == self.index:
            raise Interrupt
        return self.data[i]


def _distiller(seed: int = 0):
    torch.manual_seed(seed)
    return build_distiller("scratch", build_model("student-smoke"))


def _data():
    return train_crops("embedded", "denoise25", CFG.crop, CFG.steps * CFG.batch, seed=3)


def test_resume_after_interruption_is_bit_identical(tmp_path: Path):
    straight = _distiller()
    fit(straight, _data(), CFG, tmp_path / "a", progress=False)

    interrupted = _distiller()
    with pytest.raises(Interrupt):  # dies while building batch 5, after the checkpoint at step 4
        fit(interrupted, CrashAt(_data(), 5 * CFG.batch), CFG, tmp_path / "b", progress=False)
    resumed = _distiller(seed=123)  # different init: everything must come from the checkpoint
    result = fit(resumed, _data(), CFG, tmp_path / "b", resume=True, progress=False)
    assert result.resumed_from == 4
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert [h["loss"] for h in result.history] == [
        h["loss"] for h in load_file_history(tmp_path / "a")]


def test_wall_time_checkpoints_resume_bit_identical(tmp_path: Path):
    cfg = dataclasses.replace(CFG, checkpoint_every=0)  # checkpoints by wall time only: after every step here
    straight = _distiller()
    fit(straight, _data(), cfg, tmp_path / "a", progress=False)
    with pytest.raises(Interrupt):  # dies while building batch 3, after the checkpoint at step 3
        fit(_distiller(), CrashAt(_data(), 3 * CFG.batch), cfg, tmp_path / "b", progress=False, checkpoint_seconds=0)
    resumed = _distiller(seed=123)
    result = fit(resumed, _data(), cfg, tmp_path / "b", resume=True, progress=False)
    assert result.resumed_from == 3
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def load_file_history(run: Path) -> list[dict]:
    return torch.load(run / "checkpoint" / "state.pt", weights_only=True)["history"]


def test_without_resume_a_checkpoint_is_not_used(tmp_path: Path):
    fit(_distiller(), _data(), CFG, tmp_path, progress=False)
    result = fit(_distiller(), _data(), CFG, tmp_path, progress=False)
    assert result.resumed_from == 0


def test_non_finite_loss_names_step_and_run(tmp_path: Path):
    class NaNData(Dataset):
        def __len__(self):
            return 100

        def __getitem__(self, i):
            x = torch.full((3, 32, 32), math.nan if i >= 4 else 0.5)
            return x, x

    with pytest.raises(NonFiniteLossError, match=r"step 2 of run .*nan_run.*pixel_l1=nan"):
        fit(_distiller(), NaNData(), CFG, tmp_path / "nan_run", progress=False)


def test_cosine_schedule_with_warmup():
    cfg = TrainConfig(steps=100, lr=1e-3, min_lr=1e-5, warmup_steps=9)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(100, cfg) == pytest.approx(0.01)
    assert lr_factor(50, cfg) < lr_factor(20, cfg)


def test_same_seed_same_metrics_and_cell_reuse(tmp_path: Path):
    job = StudentJob.create("smoke", "denoise25", "skd", seed=1)
    a = run_student(job, RunStore(tmp_path / "one"), progress=False)
    b = run_student(StudentJob.create("smoke", "denoise25", "skd", seed=1), RunStore(tmp_path / "two"),
                    progress=False)
    assert a["id"] == b["id"]
    assert a["metrics"]["per_image"] == b["metrics"]["per_image"]
    assert a["status"] == "done" and a["teacher"]["id"]
    # the teacher was trained once per runs folder and is shared
    assert len(list((tmp_path / "one" / "teachers").iterdir())) == 1
    other = StudentJob.create("smoke", "denoise25", "skd", seed=2)
    assert other.id() != job.id()


def test_official_checkpoint_is_the_paper_teacher(tmp_path: Path):
    official = build_model("restormer")
    path = tmp_path / "net_g_official.pth"
    torch.save({"params": official.state_dict()}, path)
    profile = get_profile("paper").override({"teacher_checkpoint": str(path), "train_data": "embedded",
                                             "test_data": "embedded", "eval_max_side": 32})
    teacher, record = ensure_teacher(profile, "denoise25", 0, RunStore(tmp_path / "runs"))
    assert record["source"] == "checkpoint" and record["metrics"]["psnr"] > 0  # scored once, for reports
    assert not teacher.training
    for (name, a), b in zip(official.state_dict().items(), teacher.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_a_replaced_checkpoint_file_is_a_new_teacher(tmp_path: Path):
    from bench.execute.cells import teacher_id

    path = tmp_path / "teacher.pth"
    torch.save({"params": build_model("teacher-smoke").state_dict()}, path)
    profile = get_profile("smoke").override({"teacher_checkpoint": str(path)})
    first = teacher_id(profile, "denoise25", 0)
    assert teacher_id(profile, "denoise25", 0) == first
    torch.manual_seed(1)
    torch.save({"params": build_model("teacher-smoke").state_dict()}, path)  # other weights, same path
    assert teacher_id(profile, "denoise25", 0) != first


def test_wrong_teacher_checkpoint_names_keys(tmp_path: Path):
    path = tmp_path / "student.pth"
    torch.save({"params": build_model("student-smoke").state_dict()}, path)
    profile = get_profile("smoke").override({"teacher_checkpoint": str(path)})
    with pytest.raises(CheckpointError, match="student.pth.*missing keys"):
        ensure_teacher(profile, "denoise25", 0, RunStore(tmp_path / "runs"))


def test_failed_cell_is_recorded(tmp_path: Path):
    job = StudentJob.create("smoke", "denoise25", "fitnet", options={"taps": ["encoder_level9"]}, seed=0)
    with pytest.raises(KeyError, match="encoder_level"):
        run_student(job, RunStore(tmp_path), progress=False)
    record = (tmp_path / "cells" / job.id() / "record.json").read_text()
    assert '"status": "failed"' in record and "encoder_level9" in record


def test_student_weights_saved_and_loadable(tmp_path: Path):
    job = StudentJob.create("smoke", "denoise25", "scratch", seed=0)
    run_student(job, RunStore(tmp_path), progress=False)
    weights = load_file(str(tmp_path / "cells" / job.id() / "model.safetensors"))
    assert set(weights) == set(build_model("student-smoke").state_dict())


def test_train_and_eval_cli(tmp_path: Path, capsys):
    from bench.cli import main

    runs = tmp_path / "runs"
    assert main(["train", "--profile", "smoke", "--method", "scratch", "--runs-dir", str(runs), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    weights = runs / "cells" / record["id"] / "model.safetensors"
    assert main(["eval", "--model", "student-smoke", "--checkpoint", str(weights), "--data", "embedded:derain",
                 "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["color"] == "y" and len(scored["per_image"]) == len(embedded_images("test"))
    assert main(["eval", "--model", "teacher-smoke", "--checkpoint", str(weights), "--data",
                 "embedded:denoise25"]) == 2
    assert "does not fit" in capsys.readouterr().err
    assert main(["eval", "--model", "student-smoke", "--checkpoint", str(weights), "--data",
                 f"folder:{tmp_path / 'nowhere'}", "--task", "denoise25"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_a_task_can_give_the_teacher_its_own_schedule() -> None:
    from bench.execute.cells import teacher_config
    from skd_core.errors import SkdError

    profile = get_profile("smoke").override({"teacher_task_train": {"deblur": {"steps": 9, "lr": 5e-4}}})
    assert (profile.teacher_train_for("deblur").steps, profile.teacher_train_for("deblur").lr) == (9, 5e-4)
    assert profile.teacher_train_for("denoise25") == profile.teacher_train
    # the teacher's id hashes its own schedule: a changed deblur budget retrains only the deblur teacher
    assert teacher_config(profile, "deblur", 0)["train"]["steps"] == 9
    assert teacher_config(profile, "denoise25", 0) == teacher_config(get_profile("smoke"), "denoise25", 0)
    # a typo is refused where the override is given, not when the deblur teacher trains
    with pytest.raises(SkdError, match="unknown train key 'stesp' in profile overrides.teacher_task_train.deblur"):
        get_profile("smoke").override({"teacher_task_train": {"deblur": {"stesp": 9}}})


def test_a_checkpoint_whose_weights_and_state_disagree_is_not_resumed(tmp_path: Path):
    from skd_core.train.checkpoint import WEIGHTS, has_checkpoint, save_weights

    distiller = _distiller()
    fit(distiller, _data(), CFG, tmp_path / "run", progress=False)
    folder = tmp_path / "run" / "checkpoint"
    assert has_checkpoint(folder)
    # a kill between the two writes: the weights of another step beside the state of the last one
    save_weights(distiller, folder / WEIGHTS, {"step": "4"})
    assert not has_checkpoint(folder)
