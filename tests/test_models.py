"""The Restormer reproduces the official architecture; presets, registry and checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from skd_core.complexity.params import count_params
from skd_core.errors import UnknownNameError
from skd_core.models import (
    CheckpointError,
    Restormer,
    build_model,
    list_models,
    load_checkpoint,
    register_model,
)


@pytest.mark.parametrize("variant", ["withbias", "biasfree"])
@pytest.mark.parametrize("impl", ["matmul", "sdpa"])
def test_reproduces_official_outputs(reference_dir, variant, impl):
    path = reference_dir / f"restormer_small_{variant}.safetensors"
    with safe_open(str(path), "pt") as f:
        kwargs = json.loads(f.metadata()["constructor_kwargs"])
    tensors = load_file(str(path))
    model = Restormer(**kwargs, attention_impl=impl).eval()
    model.load_state_dict({k.removeprefix("param."): v for k, v in tensors.items() if k.startswith("param.")},
                          strict=True)
    with torch.no_grad():
        out = model(tensors["input"])
    assert out.shape == tensors["output"].shape
    assert (out - tensors["output"]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("variant,preset", [("default", "restormer"), ("biasfree", "restormer-biasfree")])
def test_state_dict_keys_and_shapes_are_official(reference_dir, variant, preset):
    official = json.loads((reference_dir / "restormer_state_dict_shapes.json").read_text())[variant]
    ours = {k: list(v.shape) for k, v in build_model(preset).state_dict().items()}
    assert list(ours) == list(official)
    assert ours == official


@pytest.mark.parametrize("preset,params", [
    ("restormer", 26_126_644), ("restormer-biasfree", 26_111_668), ("student-dckd", 3_813_230),
])
def test_published_parameter_counts(preset, params):
    assert count_params(build_model(preset)) == params


def test_size_sweep_presets_exist_and_shrink():
    names = {p.name for p in list_models()}
    for dim in (16, 24, 32, 40, 48):
        assert {f"student-w{dim}-full", f"student-w{dim}-half"} <= names
    assert count_params(build_model("student-w16-half")) < count_params(build_model("student-w16-full"))
    assert count_params(build_model("student-w48-full")) == 26_126_644  # full width+depth = teacher


def test_overrides_and_official_yaml_keywords():
    network_g = {"inp_channels": 3, "out_channels": 3, "dim": 8, "num_blocks": [1, 1, 1, 1],
                 "num_refinement_blocks": 1, "heads": [1, 2, 4, 8], "ffn_expansion_factor": 2.66,
                 "bias": False, "LayerNorm_type": "BiasFree", "dual_pixel_task": False}
    model = build_model("restormer", **network_g)
    assert model(torch.rand(1, 3, 16, 24)).shape == (1, 3, 16, 24)


def test_bad_layernorm_type_is_rejected():
    with pytest.raises(ValueError, match="LayerNorm_type"):
        Restormer(dim=8, LayerNorm_type="Withbias")


def test_unknown_preset_lists_closest_first():
    with pytest.raises(UnknownNameError) as err:
        build_model("student-dckb")
    assert "did you mean 'student-dckd'" in str(err.value)


def test_register_user_model_and_reject_duplicates():
    class Identity(nn.Module):
        def __init__(self, scale: float = 1.0) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(scale))

        def forward(self, x):
            return x * self.scale

    register_model("test-identity", Identity, scale=2.0)
    assert build_model("test-identity").scale.item() == 2.0
    assert build_model("test-identity", scale=3.0).scale.item() == 3.0
    with pytest.raises(ValueError, match="already registered"):
        register_model("test-identity", Identity)


@pytest.mark.parametrize("layout", ["official", "bare", "safetensors"])
def test_checkpoint_layouts_load(tmp_path, layout):
    src = build_model("teacher-smoke")
    state = src.state_dict()
    if layout == "official":
        path = tmp_path / "net_g.pth"
        torch.save({"params": state}, path)
    elif layout == "bare":
        path = tmp_path / "bare.pt"
        torch.save(state, path)
    else:
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    dst = load_checkpoint(build_model("teacher-smoke"), path)
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(dst.eval()(x), src.eval()(x))


def test_checkpoint_mismatch_names_keys(tmp_path):
    path = tmp_path / "student.pth"
    torch.save({"params": build_model("student-smoke").state_dict()}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(build_model("teacher-smoke"), path)
    msg = str(err.value)
    assert str(path) in msg and "shape mismatches" in msg and "patch_embed.proj.weight" in msg


def test_checkpoint_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"params": {"x": torch.zeros(1)}, "obj": CheckpointError("x")}, path)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(build_model("student-smoke"), path)
