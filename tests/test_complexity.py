"""MACs/FLOPs: tiny nets with closed-form counts, the published Restormer figures at 1x3x256x256
(matmul and SDPA attention), the torch.utils.flop_counter cross-check, and the allow-list of ops
that stay uncounted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.functional import scaled_dot_product_attention

from skd_core.complexity.macs import MacReport, count_macs, torch_flop_count
from skd_core.complexity.params import count_params
from skd_core.models import build_model

#: ops our models may leave uncounted (counted as 0). Empty: every op of the Restormer family has a
#: handle or is a declared layout op. A new op without a handle fails here instead of being a silent 0.
ALLOWED_UNCOUNTED: frozenset[str] = frozenset()

#: docs/design.md section 2: (params, conv-only MACs, MACs, FLOPs) at 1x3x256x256, exact counts
PUBLISHED = {
    "restormer": (26_126_644, 140_990_496_768, 154_882_031_616, 309_764_063_232),
    "student-dckd": (3_813_230, 19_914_817_536, 21_651_259_392, 43_302_518_784),
}
TABLE = Path(__file__).resolve().parents[1] / "results" / "tables" / "complexity.md"
PUBLISHED_G = {"restormer": (140.99, 154.88, 309.76), "student-dckd": (19.91, 21.65, 43.30)}


class Fn(nn.Module):
    """A module around a function of its inputs (to trace single ops)."""

    def __init__(self, fn: Callable[..., torch.Tensor], *params: nn.Module) -> None:
        super().__init__()
        self.fn, self.parts = fn, nn.ModuleList(params)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.fn(*xs)


def macs_of(module: nn.Module, *shapes: tuple[int, ...]) -> MacReport:
    if len(shapes) == 1:
        return count_macs(module, shapes[0])
    # several inputs: wrap so that the traced input is one tensor we split
    sizes = [torch.Size(s).numel() for s in shapes]

    def split(flat: torch.Tensor) -> list[torch.Tensor]:
        return [t.reshape(s) for t, s in zip(flat.split(sizes), shapes, strict=True)]

    return count_macs(Fn(lambda flat: module(*split(flat))), (sum(sizes),))


@pytest.mark.parametrize("layer,shape,macs", [
    (nn.Conv2d(3, 8, 3, padding=1), (1, 3, 16, 16), 8 * 3 * 9 * 16 * 16),
    (nn.Conv2d(3, 8, 3, padding=1, bias=False), (2, 3, 16, 16), 2 * 8 * 3 * 9 * 16 * 16),
    (nn.Conv2d(8, 8, 3, padding=1, groups=8), (1, 8, 16, 16), 8 * 1 * 9 * 16 * 16),
    (nn.Conv2d(3, 8, 3, stride=2, padding=1), (1, 3, 16, 16), 8 * 3 * 9 * 8 * 8),
    (nn.Conv2d(4, 6, 1), (1, 4, 5, 7), 6 * 4 * 5 * 7),
    (nn.ConvTranspose2d(8, 4, 2, stride=2), (1, 8, 8, 8), 8 * 8 * 8 * 4 * 2 * 2),
    (nn.Linear(10, 20), (4, 10), 4 * 10 * 20),
    (nn.Linear(10, 20), (2, 4, 10), 2 * 4 * 10 * 20),
])
def test_layer_macs_closed_form(layer: nn.Module, shape: tuple[int, ...], macs: int) -> None:
    report = count_macs(layer, shape)
    assert report.macs == macs
    assert report.flops == 2 * macs
    assert report.conv_macs == (macs if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d) else 0)
    assert report.uncounted_ops == {}


@pytest.mark.parametrize("fn,shapes,macs", [
    (torch.matmul, [(2, 3, 4, 5), (5, 6)], 2 * 3 * 4 * 5 * 6),  # broadcast
    (torch.matmul, [(4, 5), (5,)], 4 * 5),  # matrix-vector
    (torch.bmm, [(3, 4, 5), (3, 5, 6)], 3 * 4 * 5 * 6),
    (torch.mm, [(4, 5), (5, 6)], 4 * 5 * 6),
    (lambda a, b: torch.einsum("bik,bkj->bij", a, b), [(3, 4, 5), (3, 5, 6)], 3 * 4 * 5 * 6),
    (lambda c, a, b: torch.addmm(c, a, b), [(4, 6), (4, 5), (5, 6)], 4 * 5 * 6),
])
def test_matrix_product_macs_closed_form(fn: Callable[..., torch.Tensor], shapes: list, macs: int) -> None:
    report = macs_of(Fn(fn), *shapes)
    assert report.matmul_macs == report.macs == macs
    assert report.uncounted_ops == {}


def test_sdpa_counts_both_products_and_equals_explicit_attention() -> None:
    b, h, sq, sk, d, dv = 2, 3, 7, 11, 5, 4
    sdpa = macs_of(Fn(scaled_dot_product_attention), (b, h, sq, d), (b, h, sk, d), (b, h, sk, dv))
    assert sdpa.attention_macs == sdpa.macs == b * h * sq * sk * (d + dv)
    assert sdpa.element_ops["softmax"] == b * h * sq * sk

    def explicit(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (q @ k.transpose(-2, -1) * d**-0.5).softmax(-1) @ v

    shapes = (b, h, sq, d), (b, h, sk, d), (b, h, sk, dv)
    assert macs_of(Fn(explicit), *shapes).macs == sdpa.macs
    assert macs_of(Fn(explicit), *shapes).element_ops["softmax"] == sdpa.element_ops["softmax"]


def test_norms_activations_softmax_resampling_are_not_macs() -> None:
    """fvcore's defaults would add 5 x numel for layer_norm (and more) into its total; ours keep
    such work out of MACs, in element_ops."""
    model = nn.Sequential(
        nn.BatchNorm2d(4), nn.GroupNorm(2, 4), nn.GELU(), nn.ReLU(), nn.Upsample(scale_factor=2, mode="bilinear"),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.LayerNorm(64), nn.Softmax(-1),
    )
    report = count_macs(model, (2, 4, 8, 8))
    assert report.macs == 0
    assert report.element_ops == {
        "activation": 2 * 2 * 4 * 8 * 8,
        "softmax": 2 * 64,
        "normalisation": 2 * 4 * 8 * 8 * 2 + 2 * 64,
        "resampling": 2 * 4 * 16 * 16 * 2,  # upsample output + pool input
    }
    assert report.uncounted_ops == {}


def test_op_without_handle_is_reported_not_dropped() -> None:
    report = count_macs(Fn(lambda x: torch.cumsum(x @ x, dim=0)), (4, 4))
    assert report.uncounted_ops == {"aten::cumsum": 1}
    assert report.macs == 4 * 4 * 4


def test_macs_linear_in_batch_and_model_restored_to_train_mode() -> None:
    model = build_model("student-smoke").train()
    one, two = count_macs(model, (1, 3, 32, 32)), count_macs(model, (2, 3, 32, 32))
    assert two.macs == 2 * one.macs and two.conv_macs == 2 * one.conv_macs
    assert model.training


@pytest.mark.parametrize("name", ["teacher-smoke", "student-smoke"])
@pytest.mark.parametrize("impl", ["matmul", "sdpa"])
def test_restormer_family_ops_all_counted(name: str, impl: str) -> None:
    report = count_macs(build_model(name, attention_impl=impl), (1, 3, 32, 32), by_module_depth=1)
    assert set(report.uncounted_ops) == ALLOWED_UNCOUNTED
    # MACs are linear in H*W for this family (convs per pixel; MDTA's C x C map has inner dim H*W)
    assert count_macs(build_model(name, attention_impl=impl), (1, 3, 64, 64)).macs == 4 * report.macs
    assert report.by_module is not None and report.by_module[""] == report.macs
    assert sum(v for k, v in report.by_module.items() if k) == report.macs  # every MAC is in a child


@pytest.mark.parametrize("impl", ["matmul", "sdpa"])
def test_mca_and_distillation_losses_all_counted(impl: str) -> None:
    """Cross-net attention (channel: C_T x C_S map; spatial: N x N through SDPA or matmul) and the
    feature distances: closed-form MACs, no uncounted op."""
    from skd_core.losses.distance import build_distance
    from skd_core.mca import CrossNetAttention

    b, c, n = 2, 8, 16
    mca, distances = CrossNetAttention("both", impl=impl), [build_distance(d) for d in ("gk", "l1", "mse")]

    def losses(x: torch.Tensor) -> torch.Tensor:
        s, t = x[0], x[1]
        out = mca(s, t)
        return sum(dist(out[form], t) + dist(s, t) for dist in distances for form in ("channel", "spatial"))

    report = count_macs(Fn(losses), (2, b, c, 4, 4))
    assert report.macs == b * c * c * n * 2 + b * n * n * (c + c)
    assert set(report.uncounted_ops) == ALLOWED_UNCOUNTED


@pytest.fixture(scope="module")
def published_reports() -> dict[tuple[str, str], MacReport]:
    """fvcore counts at 1x3x256x256, traced once per session (about 20 s on 2 cores)."""
    return {
        (name, impl): count_macs(build_model(name, attention_impl=impl), (1, 3, 256, 256))
        for name in PUBLISHED for impl in ("matmul", "sdpa")
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PUBLISHED))
@pytest.mark.parametrize("impl", ["matmul", "sdpa"])
def test_published_complexity_at_256(published_reports: dict, name: str, impl: str) -> None:
    report = published_reports[(name, impl)]
    params, conv_macs, macs, flops = PUBLISHED[name]
    assert count_params(build_model(name)) == params
    assert (report.conv_macs, report.macs, report.flops) == (conv_macs, macs, flops)
    assert tuple(round(v / 1e9, 2) for v in (conv_macs, macs, flops)) == PUBLISHED_G[name]
    assert report.input_shape == (1, 3, 256, 256)
    assert set(report.uncounted_ops) == ALLOWED_UNCOUNTED
    assert report.counter.startswith("fvcore 0.1.5")


@pytest.mark.parametrize("name", list(PUBLISHED))
@pytest.mark.parametrize("impl", ["matmul", "sdpa"])
def test_torch_flop_counter_agrees_at_256(name: str, impl: str) -> None:
    """An independent count (FlopCounterMode on meta tensors, no arithmetic) gives the same FLOPs."""
    assert torch_flop_count(build_model(name, attention_impl=impl), (1, 3, 256, 256)) == PUBLISHED[name][3]


def test_cross_check_field_and_cpu_flop_counter_pitfall() -> None:
    """On CPU tensors FlopCounterMode counts SDPA as 0 (torch 2.13): why the cross-check runs on meta."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model("student-smoke", attention_impl="sdpa").eval()
    report = count_macs(model, (1, 3, 32, 32), cross_check=True)
    assert report.torch_flops == report.flops
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 32, 32))
    assert counter.get_total_flops() == 2 * (report.conv_macs + report.matmul_macs) < report.flops


def test_committed_table_holds_published_figures() -> None:
    table = TABLE.read_text()
    assert "1x3x256x256" in table and "fvcore 0.1.5" in table and "FLOPs = 2 x MACs" in table
    rows = {cells[1].strip(): [c.strip() for c in cells[2:]] for line in table.splitlines()
            if line.startswith("| ") and len(cells := line.split("|")) > 6}
    for name, (params, *_rest) in PUBLISHED.items():
        assert rows[name][0] == str(params)
        assert tuple(float(v) for v in rows[name][1:4]) == PUBLISHED_G[name]
