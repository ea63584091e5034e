"""BasicSR / Restormer options files (``skd-bench train --opt``): the official deraining file's
``network_g`` builds the teacher; what the suite supports is mapped, the rest refused key by key; a
smoke-sized file trains and scores; a checkpoint of the other LayerNorm variant gets a hint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

import bench.execute.teachers
from bench.cli import main
from bench.spec.basicsr import (
    UnsupportedOptionsError,
    layernorm_hint,
    network_kwargs,
    read_options,
    teacher_preset,
)
from skd_core.models import MODELS, Restormer, build_model

DATA = Path(__file__).resolve().parent / "data" / "basicsr"
OFFICIAL = DATA / "Deraining_Restormer.yml"  # swz30/Restormer, unchanged
SMOKE = DATA / "smoke_restormer.yml"


@pytest.fixture(autouse=True)
def _private_presets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Presets registered for an options file stay in this test."""
    monkeypatch.setattr(MODELS, "_items", dict(MODELS._items))


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_official_network_g_block_builds_the_teacher() -> None:
    block = yaml.safe_load(OFFICIAL.read_text())["network_g"]
    kwargs = network_kwargs(block)
    assert params(Restormer(**kwargs)) == params(build_model("restormer")) == 26_126_644
    assert teacher_preset(kwargs) == "restormer"
    assert teacher_preset({**kwargs, "LayerNorm_type": "BiasFree"}) == "restormer-biasfree"


def test_a_network_g_without_a_preset_is_registered_with_its_keywords() -> None:
    smoke = {"dim": 8, "num_blocks": [1, 1, 1, 2], "num_refinement_blocks": 1}
    assert teacher_preset(smoke) == "teacher-smoke"
    other = {**smoke, "num_blocks": [1, 1, 1, 1], "LayerNorm_type": "BiasFree"}
    name = teacher_preset(other)
    assert name.startswith("basicsr-") and teacher_preset(other) == name  # the same keywords, the same preset
    assert params(build_model(name)) == params(Restormer(**other)) != params(build_model("teacher-smoke"))


def test_network_g_of_another_architecture_or_bad_values_is_refused() -> None:
    with pytest.raises(UnsupportedOptionsError) as info:
        network_kwargs({"type": "SwinIR", "dim": 0, "num_blocks": [4, 6], "LayerNorm_type": "NoBias", "depths": 3})
    assert [line.split(":")[0] for line in info.value.lines] == [
        "network_g.type", "network_g.depths", "network_g.dim", "network_g.num_blocks", "network_g.LayerNorm_type"]


def test_the_smoke_file_maps_to_profile_overrides() -> None:
    options = read_options(SMOKE, "derain")
    assert options.seed == 3
    overrides = options.profile_overrides()
    assert overrides.pop("teacher").startswith("basicsr-")
    assert overrides == {
        "train_data": "folder:datasets/train", "test_data": "folder:datasets/test",
        "teacher_train": {"steps": 4, "warmup_steps": 1, "grad_clip": 0.01, "schedule": "cosine", "min_lr": 1e-6,
                          "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "betas": [0.9, 0.999],
                          "batch": 2, "crop": 32, "val_every": 2}}
    assert {"name", "model_type", "num_gpu", "logger", "dist_params"} <= set(options.ignored)
    with pytest.raises(UnsupportedOptionsError, match=r"val\.metrics\.psnr\.test_y_channel: true not supported"):
        read_options(SMOKE, "denoise25")  # scored on RGB, the file validates on Y


def test_the_official_file_is_refused_one_line_per_unsupported_key(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    assert main(["train", "--role", "teacher", "--profile", "smoke", "--task", "derain", "--opt", str(OFFICIAL),
                 "--runs-dir", str(runs)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    prefix = f"skd-bench train: error: --opt {OFFICIAL}: "
    assert all(line.startswith(prefix) for line in lines), lines
    assert [line[len(prefix):].split(":")[0] for line in lines] == [
        "train.scheduler.periods", "train.scheduler.restart_weights", "train.scheduler.eta_mins",
        "datasets.train.mini_batch_sizes", "datasets.train.iters", "datasets.train.gt_sizes"]
    assert not runs.exists()


def test_unknown_keys_are_refused_and_bookkeeping_is_ignored(tmp_path: Path) -> None:
    options = yaml.safe_load(SMOKE.read_text())
    options["train"].update(ema_decay=0.999, mixing_augs={"mixup": True})
    options["datasets"]["train"]["dataroot_lq"] = "elsewhere/rainy"
    options["path"]["resume_state"] = "state.pt"
    options["extra"] = 1
    path = tmp_path / "opt.yml"
    path.write_text(yaml.safe_dump(options))
    with pytest.raises(UnsupportedOptionsError) as info:
        read_options(path, "derain")
    assert sorted(line.split(":")[0] for line in info.value.lines) == [
        "datasets.train.dataroot_lq", "extra", "path.resume_state", "train.ema_decay", "train.mixing_augs.mixup"]


def _folder_set(root: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        gt = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
        lq = np.clip(gt + rng.normal(0, 12, gt.shape), 0, 255).astype(np.uint8)
        for sub, image in (("input", lq), ("target", gt)):
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / sub / f"{i}.png")


def test_train_opt_trains_and_scores_a_smoke_options_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys) -> None:
    monkeypatch.chdir(tmp_path)  # the file's dataroots are relative to the current directory, as in BasicSR
    _folder_set(tmp_path / "datasets" / "train", 3, 0)
    _folder_set(tmp_path / "datasets" / "test", 2, 1)
    argv = ["train", "--role", "teacher", "--profile", "smoke", "--task", "derain", "--opt", str(SMOKE),
            "--runs-dir", "runs", "--device", "cpu"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "ignored (bookkeeping, no effect here): name, model_type, num_gpu, logger, dist_params" in err
    [folder] = (tmp_path / "runs" / "teachers").iterdir()
    record = json.loads((folder / "record.json").read_text())
    assert record["status"] == "done" and record["config"]["seed"] == 3
    assert record["config"]["train_data"] == "folder:datasets/train" and record["metrics"]["color"] == "y"
    assert record["config"]["train"]["steps"] == record["training"]["steps"] == 4
    assert [row["step"] for row in record["training"]["history"] if "val_psnr" in row] == [2, 4]
    assert np.isfinite(record["metrics"]["psnr"]) and len(record["metrics"]["per_image"]) == 2
    assert f"weights: {Path('runs') / 'teachers' / folder.name / 'model.safetensors'}" in out.splitlines()

    def refuse(*args, **kwargs):
        raise AssertionError("a finished teacher was trained again")

    monkeypatch.setattr(bench.execute.teachers, "train_teacher", refuse)
    assert main(argv) == 0
    assert f"record {Path('runs') / 'teachers' / folder.name / 'record.json'}" in capsys.readouterr().out


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def test_a_biasfree_checkpoint_for_the_withbias_model_suggests_restormer_biasfree(tmp_path: Path, capsys) -> None:
    path = tmp_path / "biasfree.safetensors"
    save_file(_state(build_model("restormer-biasfree")), str(path))
    assert main(["eval", "--model", "restormer", "--checkpoint", str(path), "--data", "embedded:derain",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "does not fit" in err and "no LayerNorm biases" in err and "use preset 'restormer-biasfree'" in err


def test_the_hint_goes_both_ways_and_only_for_layernorm_biases() -> None:
    with torch.device("meta"):
        with_bias, bias_free = build_model("restormer").state_dict(), build_model("restormer-biasfree").state_dict()
    assert "use preset 'restormer'" in layernorm_hint("restormer-biasfree", bias_free, with_bias)
    assert "restormer-biasfree" in layernorm_hint("restormer", with_bias, bias_free)
    other = {k: v for k, v in bias_free.items() if not k.startswith("output.")}
    assert layernorm_hint("restormer", with_bias, other) is None  # more than LayerNorm biases is missing
    assert layernorm_hint("restormer", with_bias, with_bias) is None


def test_a_teacher_checkpoint_of_the_other_variant_gets_the_hint_in_train(tmp_path: Path, capsys) -> None:
    smoke = dict(MODELS.get("teacher-smoke").kwargs)
    path = tmp_path / "teacher.safetensors"
    save_file(_state(Restormer(**smoke, LayerNorm_type="BiasFree")), str(path))
    assert main(["train", "--role", "teacher", "--profile", "smoke", "--set", f"teacher_checkpoint={path}",
                 "--runs-dir", str(tmp_path / "runs"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "no LayerNorm biases" in err and "LayerNorm_type: BiasFree" in err
