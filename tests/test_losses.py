"""Loss properties: GK distance, SKD feature loss, contrastive loss (both extractors), baselines."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from skd_core.errors import ConfigError, UnknownNameError
from skd_core.losses import (
    VGG19_TAPS,
    ContrastiveLoss,
    GaussianKernelDistance,
    SKDFeatureLoss,
    TeacherExtractor,
    VGG19Features,
    at_loss,
    build_distance,
    fakd_loss,
    fitnet_loss,
    output_kd_loss,
)
from skd_core.mca import CrossNetAttention
from skd_core.models import build_model


def test_gk_lies_in_0_1_and_is_exactly_zero_at_equality():
    gk = GaussianKernelDistance(sigma=1.0)
    x = torch.randn(4, 8, 6, 6)
    assert gk(x, x).item() == 0.0
    for scale in (1e-4, 1e-2, 0.3, 1.0, 3.0):
        value = gk(x, x + scale * torch.randn_like(x)).item()
        assert 0.0 < value < 1.0


def test_gk_is_the_kernel_of_the_per_sample_mean_squared_difference():
    x, y = torch.randn(3, 4, 5, 5), torch.randn(3, 4, 5, 5)
    d = (x - y).square().flatten(1).mean(1)
    for sigma in (0.5, 2.0):
        want = (1 - torch.exp(-d / (2 * sigma**2))).mean()
        assert torch.allclose(GaussianKernelDistance(sigma)(x, y), want, atol=1e-7)


def test_gk_gradient_is_useful_at_typical_feature_distances_and_vanishes_with_a_sum():
    """Independent unit-variance features (d about 2): GK's gradient is exp(-d/2)/2 = 0.18 of the
    MSE gradient. The sum reading (d about 2 * 48*16*16) saturates: the gradient underflows to 0."""
    x, y = torch.randn(2, 48, 16, 16, requires_grad=True), torch.randn(2, 48, 16, 16)
    (g_mse,) = torch.autograd.grad(F.mse_loss(x, y), x)
    (g_gk,) = torch.autograd.grad(GaussianKernelDistance(1.0)(x, y), x)
    ratio = g_gk.norm() / g_mse.norm()
    assert 0.1 < ratio.item() < 0.5
    assert math.isclose(ratio.item(), math.exp(-1.0) / 2, rel_tol=0.1)
    (g_sum,) = torch.autograd.grad(GaussianKernelDistance(1.0, reduction="sum")(x, y), x)
    assert g_sum.abs().max().item() == 0.0


def test_l1_and_mse_alternatives_and_unknown_distance():
    x, y = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.equal(build_distance("l1")(x, y), F.l1_loss(x, y))
    assert torch.allclose(build_distance("mse")(x, y), F.mse_loss(x, y))
    assert isinstance(build_distance("gk", sigma=2.0), GaussianKernelDistance)
    with pytest.raises(UnknownNameError, match=r"unknown distance 'msee'; did you mean 'mse'\? Valid: mse"):
        build_distance("msee")
    with pytest.raises(ConfigError, match="sigma must be > 0"):
        GaussianKernelDistance(0.0)


def test_skd_feature_loss_composes_distance_and_mca_terms():
    gk = GaussianKernelDistance(1.0)
    s = {"a": torch.randn(1, 4, 4, 4), "b": torch.randn(1, 8, 2, 2)}
    t = {"a": torch.randn(1, 4, 4, 4), "b": torch.randn(1, 8, 2, 2)}
    parts = SKDFeatureLoss(gk, CrossNetAttention("both"), alpha1=0.5)(s, t)
    mca = CrossNetAttention("both")
    want_channel = sum(0.5 * gk(mca(s[p], t[p])["channel"], t[p]) for p in s)
    assert set(parts) == {"feature", "channel", "spatial"}
    assert torch.allclose(parts["feature"], gk(s["a"], t["a"]) + gk(s["b"], t["b"]))
    assert torch.allclose(parts["channel"], want_channel)
    assert set(SKDFeatureLoss(gk, CrossNetAttention("none"))(s, t)) == {"feature"}
    assert set(SKDFeatureLoss(gk, CrossNetAttention("spatial"))(s, t)) == {"feature", "spatial"}


@pytest.fixture(scope="module")
def teacher() -> torch.nn.Module:
    torch.manual_seed(1)
    return build_model("teacher-smoke").requires_grad_(False).eval()


def test_contrastive_loss_falls_as_the_student_output_moves_toward_the_teacher(teacher):
    gt = torch.rand(1, 3, 32, 32)
    degraded = (gt + 0.2 * torch.randn_like(gt)).clamp(0, 1)
    with torch.no_grad():
        teacher_out = teacher(degraded)
    start = torch.rand(1, 3, 32, 32)
    loss = ContrastiveLoss(TeacherExtractor(teacher))
    values = [loss((1 - a) * start + a * teacher_out, teacher_out, degraded).item() for a in (0, 0.25, 0.5, 0.75, 1)]
    assert all(later < earlier for earlier, later in zip(values, values[1:], strict=False))
    assert values[-1] == 0.0


def test_contrastive_gradient_reaches_the_student_output_not_the_teacher(teacher):
    calls = []
    handle = teacher.decoder_level1.register_forward_hook(lambda *_: calls.append(1))
    out = torch.rand(1, 3, 32, 32, requires_grad=True)
    ContrastiveLoss(TeacherExtractor(teacher))(out, torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)).backward()
    handle.remove()
    assert out.grad is not None and out.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    assert not calls  # the extractor stops after `latent`: the decoder never runs


def _torchvision_vgg19_state_dict() -> dict[str, torch.Tensor]:
    """Random weights under torchvision's vgg19 key names (features 0..34 and the classifier)."""
    torch.manual_seed(0)
    state, in_c = {}, 3
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
    index = 0
    for v in cfg:
        if v == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(v, in_c, 3, 3) * math.sqrt(2 / (9 * in_c))
        state[f"features.{index}.bias"] = torch.zeros(v)
        in_c, index = v, index + 2
    state["classifier.0.weight"] = torch.zeros(4, 8)
    return state


def test_vgg19_loads_a_torchvision_state_dict_file_and_gives_relu_k_1(tmp_path):
    path = tmp_path / "vgg19.pth"
    state = _torchvision_vgg19_state_dict()
    torch.save(state, path)
    vgg = VGG19Features.from_file(path)
    assert torch.equal(vgg.features[28].weight, state["features.28.weight"])
    assert not any(p.requires_grad for p in vgg.parameters()) and not vgg.training
    feats = vgg(torch.rand(1, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]
    assert list(VGG19_TAPS.values()) == [1, 6, 11, 20, 29]
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    ContrastiveLoss(vgg)(x, torch.rand_like(x), torch.rand_like(x)).backward()
    assert x.grad.abs().sum() > 0


def test_vgg19_weights_missing_or_unfitting_are_clear_errors(tmp_path):
    missing = tmp_path / "nowhere" / "vgg19.pth"
    with pytest.raises(ConfigError, match=f"VGG19 weights file not found: {missing}"):
        VGG19Features.from_file(missing)
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, bad)
    with pytest.raises(ConfigError, match=r"not a torchvision vgg19 state_dict: missing keys \['features.0.bias'"):
        VGG19Features.from_file(bad)


def test_output_kd_and_fitnet_are_l1_and_mse():
    a, b = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    assert torch.equal(output_kd_loss(a, b), F.l1_loss(a, b))
    assert torch.allclose(fitnet_loss(a, b), F.mse_loss(a, b))
    with pytest.raises(ConfigError, match="FitNet needs equal shapes"):
        fitnet_loss(a, b[:, :2])


def test_attention_transfer_compares_normalised_energy_maps_across_widths():
    f = torch.randn(2, 4, 6, 6)
    assert at_loss(f, torch.cat([f, f], 1)).item() == pytest.approx(0.0, abs=1e-12)  # same map, 2x energy
    g = torch.randn(2, 8, 6, 6)
    a_f = F.normalize(f.square().sum(1).flatten(1), dim=1)
    a_g = F.normalize(g.square().sum(1).flatten(1), dim=1)
    assert torch.allclose(at_loss(f, g), (a_f - a_g).square().mean())


def _fakd_reference(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    def affinity(x: torch.Tensor) -> torch.Tensor:
        x = x.double().flatten(2)
        x = x / (x.square().sum(1, keepdim=True).sqrt() + 1e-7)
        return x.transpose(1, 2) @ x

    return (affinity(s) - affinity(t)).abs().mean()


def test_fakd_matches_its_reference_and_ignores_width_and_channel_rotation():
    s, t = torch.randn(2, 4, 5, 5), torch.randn(2, 8, 5, 5)
    assert fakd_loss(s, t).item() == pytest.approx(_fakd_reference(s, t).item(), rel=1e-5)
    q, _ = torch.linalg.qr(torch.randn(4, 4))
    rotated = torch.einsum("ij,bjhw->bihw", q, s)
    assert fakd_loss(s, rotated).item() == pytest.approx(0.0, abs=1e-6)
    assert fakd_loss(s, torch.cat([s, s], 1)).item() == pytest.approx(0.0, abs=1e-6)


def test_fakd_in_row_blocks_equals_the_whole_map_with_gradients():
    s, t = torch.randn(2, 6, 7, 9, requires_grad=True), torch.randn(2, 5, 7, 9)
    whole = fakd_loss(s, t)
    (g_whole,) = torch.autograd.grad(whole, s)
    blocks = fakd_loss(s, t, max_elements=2 * 63 * 10)  # 10 rows per block, 7 blocks
    (g_blocks,) = torch.autograd.grad(blocks, s)
    assert blocks.item() == pytest.approx(whole.item(), rel=1e-6)
    assert torch.allclose(g_blocks, g_whole, atol=1e-7)
