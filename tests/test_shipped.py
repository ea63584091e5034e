"""Shipped teachers: used exactly when they are the teacher a run would train."""

from __future__ import annotations

from pathlib import Path

import pytest

import bench.execute.shipped
import bench.execute.teachers
from bench.cli import main
from bench.execute.cells import teacher_id
from bench.execute.teachers import ensure_teacher
from bench.spec.profiles import get_profile
from bench.store import WEIGHTS, RunStore
from skd_core.models import CheckpointError


@pytest.fixture()
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A smoke denoise25 teacher trained in one runs folder and shipped to a temporary repository folder."""
    root = tmp_path / "shipped"
    monkeypatch.setattr(bench.execute.shipped, "SHIPPED", root)
    assert main(["ship-teachers", "--profile", "smoke", "--tasks", "denoise25", "--runs-dir", str(tmp_path / "a"),
                 "--out", str(root)]) == 2  # nothing trained yet: one clear error
    ensure_teacher(get_profile("smoke"), "denoise25", 0, RunStore(tmp_path / "a"), progress=False)
    assert main(["ship-teachers", "--profile", "smoke", "--tasks", "denoise25", "--runs-dir", str(tmp_path / "a"),
                 "--out", str(root)]) == 0
    return root


def _no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a teacher was trained although a matching one is shipped")
    monkeypatch.setattr(bench.execute.teachers, "train_teacher", refuse)


def test_a_matching_shipped_teacher_is_used_not_retrained(shipped: Path, tmp_path: Path, monkeypatch):
    profile = get_profile("smoke")
    first = RunStore(tmp_path / "a")
    trained = first.read_record(first.teacher_dir(teacher_id(profile, "denoise25", 0)))
    _no_training(monkeypatch)
    store = RunStore(tmp_path / "b")
    model, record = ensure_teacher(profile, "denoise25", 0, store, progress=False)
    assert record["shipped"]["id"] == record["id"] == trained["id"]
    assert record["metrics"] == trained["metrics"]
    folder = store.teacher_dir(record["id"])
    assert (folder / WEIGHTS).read_bytes() == (tmp_path / "a" / "teachers" / record["id"] / WEIGHTS).read_bytes()
    assert store.testset(record["testset"]).keys() == record["outputs"].keys()  # the report can draw its panel
    assert all((store.root / path).is_file() for path in record["outputs"].values())
    assert not model.training


def test_another_config_trains_its_own_teacher(shipped: Path, tmp_path: Path):
    profile = get_profile("smoke").override({"teacher_train": {"steps": 3}})
    _, record = ensure_teacher(profile, "denoise25", 0, RunStore(tmp_path / "c"), progress=False)
    assert "shipped" not in record and record["training"]["steps"] == 3


def test_corrupt_shipped_weights_name_the_file(shipped: Path, tmp_path: Path):
    weights = shipped / "smoke-denoise25" / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=str(weights)):
        ensure_teacher(get_profile("smoke"), "denoise25", 0, RunStore(tmp_path / "d"), progress=False)
