"""Feature taps (forward hooks on dotted paths) and the probe-sized width adapters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from skd_core.adapters import Adapters, probe_shapes
from skd_core.complexity.params import count_params
from skd_core.errors import ConfigError, UnknownNameError
from skd_core.methods import build_distiller
from skd_core.models import build_model
from skd_core.taps import DEFAULT_TAPS, FeatureTaps, module_paths


@pytest.fixture
def teacher() -> nn.Module:
    return build_model("teacher-smoke").eval()


@pytest.fixture
def image() -> torch.Tensor:
    return torch.rand(1, 3, 32, 32)


def test_hooked_features_equal_direct_forward_of_the_submodule_chain(teacher, image):
    m = teacher
    with torch.no_grad():
        enc1 = m.encoder_level1(m.patch_embed(image))
        enc2 = m.encoder_level2(m.down1_2(enc1))
        enc3 = m.encoder_level3(m.down2_3(enc2))
        latent = m.latent(m.down3_4(enc3))
        block = m.encoder_level2[0]
        attn = block.attn(block.norm1(m.down1_2(enc1)))
        with FeatureTaps(m, ["encoder_level1", "encoder_level2", "encoder_level3", "latent",
                             "encoder_level2.0.attn"]) as taps:
            out, feats = taps.run(image)
        direct = m(image)
    assert torch.equal(out, direct)
    for path, want in [("encoder_level1", enc1), ("encoder_level2", enc2), ("encoder_level3", enc3),
                       ("latent", latent), ("encoder_level2.0.attn", attn)]:
        assert torch.equal(feats[path], want), path


def test_default_taps_are_the_seven_u_levels(teacher, image):
    with FeatureTaps(teacher, DEFAULT_TAPS) as taps, torch.no_grad():
        _, feats = taps.run(image)
    d = 8  # teacher-smoke dim
    want = {"encoder_level1": (d, 32), "encoder_level2": (2 * d, 16), "encoder_level3": (4 * d, 8),
            "latent": (8 * d, 4), "decoder_level3": (4 * d, 8), "decoder_level2": (2 * d, 16),
            "decoder_level1": (2 * d, 32)}
    assert list(feats) == list(DEFAULT_TAPS)
    assert {p: (f.shape[1], f.shape[2]) for p, f in feats.items()} == want


def test_unknown_path_fails_at_once_naming_the_closest(teacher):
    with pytest.raises(UnknownNameError) as err:
        FeatureTaps(teacher, ["encoder_levl2"], name="teacher")
    msg = str(err.value)
    assert "unknown tap path 'encoder_levl2' in teacher; did you mean 'encoder_level2'?" in msg
    assert "Valid: encoder_level2" in msg
    assert not teacher._forward_hooks and all(not m._forward_hooks for m in teacher.modules())


def test_add_remove_clear_and_context_manager_leave_the_model_untouched(teacher, image):
    def hook_count() -> int:
        return sum(len(m._forward_hooks) for m in teacher.modules())

    keys = list(teacher.state_dict())
    taps = FeatureTaps(teacher)
    handle = taps.add("latent")
    taps.add("encoder_level1")
    assert taps.paths == ("latent", "encoder_level1") and hook_count() == 2
    with pytest.raises(ConfigError, match="already tapped"):
        taps.add("latent")
    taps.remove("latent")
    assert taps.paths == ("encoder_level1",) and hook_count() == 1
    handle.remove()  # removing a removed handle is a no-op
    with pytest.raises(UnknownNameError, match="did you mean 'encoder_level1'"):
        taps.remove("encoder_level")
    taps.clear()
    assert hook_count() == 0
    with FeatureTaps(teacher, DEFAULT_TAPS):
        assert hook_count() == len(DEFAULT_TAPS)
    assert hook_count() == 0
    assert list(teacher.state_dict()) == keys
    assert "encoder_level1.0.attn.qkv" in module_paths(teacher)


def test_records_only_while_recording_so_tap_sets_do_not_mix(teacher, image):
    first, second = FeatureTaps(teacher, ["latent"]), FeatureTaps(teacher, ["encoder_level1"])
    with torch.no_grad():
        teacher(image)  # nobody recording: nothing kept
        _, other = second.run(image)  # only `second` records
        with first.recording() as before:
            pass
        with first.recording() as feats:
            teacher(image)
    assert list(other) == ["encoder_level1"] and before == {} and list(feats) == ["latent"]
    first.clear()
    second.clear()


def test_stop_early_skips_the_layers_after_the_last_tap(teacher, image):
    calls = []
    teacher.decoder_level3.register_forward_hook(lambda *_: calls.append(1))
    with FeatureTaps(teacher, ["encoder_level2", "encoder_level1"]) as taps, torch.no_grad():
        out, feats = taps.run(image, stop_early=True)
        assert out is None and set(feats) == {"encoder_level1", "encoder_level2"} and not calls
        out, _ = taps.run(image)
    assert out is not None and calls == [1]


def test_probe_sizes_conv_adapters_where_widths_differ_and_identity_where_equal(teacher, image):
    student = build_model("student-smoke")
    adapters = Adapters.from_probe(student, teacher, DEFAULT_TAPS, image)
    widths = {s.path: (s.student[0], s.teacher[0]) for s in probe_shapes(student, teacher, DEFAULT_TAPS, image)}
    assert widths["encoder_level1"] == (4, 8) and widths["latent"] == (32, 64)
    for path, (c_s, c_t) in widths.items():
        layer = adapters.layers[path]
        assert isinstance(layer, nn.Conv2d) and (layer.in_channels, layer.out_channels) == (c_s, c_t)
        assert layer.kernel_size == (1, 1)
    same = Adapters.from_probe(build_model("teacher-smoke"), teacher, DEFAULT_TAPS, image)
    assert all(isinstance(layer, nn.Identity) for layer in same.layers.values())
    assert student.training  # the probe restores the mode it found


def test_adapters_for_nested_paths_and_their_state_dict_keys(teacher, image):
    student = build_model("student-smoke")
    adapters = Adapters.from_probe(student, teacher, ["encoder_level1.0"], image)
    assert list(adapters.state_dict()) == ["layers.encoder_level1/0.weight", "layers.encoder_level1/0.bias"]
    assert adapters("encoder_level1.0", torch.zeros(2, 4, 5, 5)).shape == (2, 8, 5, 5)


def test_unequal_spatial_sizes_are_a_clear_error(teacher, image):
    class Pooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder_level1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.encoder_level1(x)

    message = r"tap 'encoder_level1': student feature is 16x16 but teacher feature is 32x32"
    with pytest.raises(ConfigError, match=message):
        probe_shapes(Pooled(), teacher, ["encoder_level1"], image)


def test_adapters_are_not_student_parameters(teacher, image):
    student = build_model("student-smoke")
    params = count_params(student)
    distiller = build_distiller("skd", student, teacher, probe=image)
    assert count_params(student) == params
    assert not any("adapters" in name for name, _ in student.named_modules())
    n_adapter = sum(p.numel() for p in distiller.method.adapters.parameters())
    assert n_adapter > 0 and sum(p.numel() for p in distiller.trainable_parameters()) == params + n_adapter
