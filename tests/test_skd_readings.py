"""SKD readings that make each term act: MCA temperature (fixed or learned), the attention-entropy
monitor, the median-heuristic GK bandwidth and the contrastive forms (docs/design.md section 1)."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from skd_core.errors import ConfigError, SkdError, UnknownNameError
from skd_core.losses import ContrastiveLoss, GaussianKernelDistance, MedianBandwidth, SKDFeatureLoss, info_nce
from skd_core.mca import (
    DEFAULT_SPATIAL_TEMPERATURE,
    DEFAULT_TEMPERATURE,
    CrossNetAttention,
    LearnedTemperature,
    channel_attention,
    evenly_spaced,
    normalized_entropy,
    spatial_attention,
    spatial_weights,
)
from skd_core.methods import SKDOptions, build_distiller
from skd_core.models import build_model
from skd_core.train.checkpoint import TrainState, load_checkpoint_into, save_checkpoint
from skd_core.train.config import TrainConfig
from skd_core.train.schedule import build_optimizer, build_scheduler


def _skd(options: dict, seed: int = 0):
    torch.manual_seed(seed)
    student, teacher = build_model("student-smoke"), build_model("teacher-smoke")
    return build_distiller("skd", student, teacher, options, torch.zeros(1, 3, 32, 32))


def _batch(seed: int = 0, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.rand(n, 3, 32, 32, generator=g)


# --- MCA temperature -------------------------------------------------------------------------------


def test_default_temperatures_are_the_rules_values():
    assert DEFAULT_TEMPERATURE == 0.1 and DEFAULT_SPATIAL_TEMPERATURE == 0.01
    assert SKDOptions().temperature == 0.1 and SKDOptions().temperature_init == 0.1
    assert SKDOptions().spatial_temperature == 0.01
    assert CrossNetAttention().temperature == 0.1 and CrossNetAttention().spatial_temperature == 0.1


def test_each_form_attends_at_its_own_fixed_temperature():
    s, t = torch.randn(2, 5, 3, 4, dtype=torch.float64), torch.randn(2, 5, 3, 4, dtype=torch.float64)
    out = CrossNetAttention("both", 0.3, spatial_temperature=0.02)(s, t)
    assert torch.allclose(out["channel"], channel_attention(s, t, 0.3), atol=1e-12)
    assert torch.allclose(out["spatial"], spatial_attention(s, t, 0.02), atol=1e-12)
    assert not torch.allclose(out["spatial"], spatial_attention(s, t, 0.3), atol=1e-6)
    default = _skd({}).method.feature_loss.mca
    assert (default.temperature, default.spatial_temperature) == (0.1, 0.01)
    same = _skd({"temperature": 0.2, "spatial_temperature": "same"}).method.feature_loss.mca
    assert (same.temperature, same.spatial_temperature) == (0.2, 0.2)


@pytest.mark.parametrize("impl", ["sdpa", "matmul"])
def test_a_tensor_temperature_equals_the_float_and_gets_its_gradient(impl):
    s, t = torch.randn(2, 5, 3, 4, dtype=torch.float64), torch.randn(2, 5, 3, 4, dtype=torch.float64)
    lam = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(spatial_attention(s, t, lam, impl=impl), spatial_attention(s, t, 0.3, impl=impl), atol=1e-12)
    assert torch.allclose(channel_attention(s, t, lam), channel_attention(s, t, 0.3), atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: spatial_attention(s, t, x, impl=impl), (lam,))
    assert torch.autograd.gradcheck(lambda x: channel_attention(s, t, x), (lam,))


def test_learned_maps_are_the_weights_the_loss_attends_with():
    s, t = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3)
    learned = LearnedTemperature(["a"], ["channel", "spatial"], init=0.05)
    lam = learned("a")
    assert set(lam) == {"channel", "spatial"} and math.isclose(lam["channel"].item(), 0.05, rel_tol=1e-6)
    mca = CrossNetAttention("both")
    maps = mca.weights(s, t, list(range(9)), lam)
    attended = mca(s, t, lam)
    assert torch.allclose(attended["channel"], (maps["channel"] @ s.flatten(2)).reshape(1, 4, 3, 3), atol=1e-6)
    tokens = s.flatten(2).transpose(1, 2)  # B, N, C
    spatial = (maps["spatial"].flatten(2) @ tokens).transpose(1, 2).reshape(1, 4, 3, 3)
    assert torch.allclose(attended["spatial"], spatial, atol=1e-5)


def test_learned_temperature_trains_with_the_student_but_is_not_part_of_it():
    distiller = _skd({"temperature": "learned", "temperature_init": 0.2})
    learned = distiller.method.feature_loss.temperature
    assert isinstance(learned, LearnedTemperature) and learned.log_temperature.shape == (7, 2)
    lam = learned.log_temperature.exp()  # initialised per form: channel, spatial
    assert torch.allclose(lam[:, 0], torch.full((7,), 0.2)) and torch.allclose(lam[:, 1], torch.full((7,), 0.01))
    distiller(*_batch()).loss.backward()
    grad = learned.log_temperature.grad
    assert grad is not None and bool((grad != 0).all())
    param = learned.log_temperature
    student, bare = distiller.student, build_model("student-smoke")
    assert not any(p is param for p in student.parameters())
    assert list(student.state_dict()) == list(bare.state_dict())  # (MDTA's own temperatures only)
    assert sum(p.numel() for p in student.parameters()) == sum(p.numel() for p in bare.parameters())
    assert "method.feature_loss.temperature.log_temperature" in distiller.state_dict()  # the checkpoint
    assert any(p is param for p in distiller.trainable_parameters())
    adapter_params = sum(p.numel() for p in distiller.method.parameters())  # as records count them
    assert adapter_params == sum(p.numel() for p in distiller.method.adapters.parameters()) + 14


def test_learned_temperature_only_for_the_forms_that_run():
    assert _skd({"temperature": "learned", "mca_dims": "channel"}).method.feature_loss.temperature.forms == ("channel",)
    assert _skd({"temperature": "learned", "mca_dims": "none"}).method.feature_loss.temperature is None
    assert _skd({}).method.feature_loss.temperature is None  # fixed: nothing learned, nothing saved


@pytest.mark.parametrize("bad,match", [
    ({"temperature": "learnd"}, r"unknown value of option 'temperature' 'learnd'; did you mean 'learned'\?"),
    ({"temperature": 0}, r"option 'temperature' must be > 0, got 0"),
    ({"temperature": [0.1]}, r"option 'temperature' must be a finite number"),
    ({"temperature_init": -1}, r"option 'temperature_init' must be > 0, got -1"),
    ({"spatial_temperature": "learned"}, r"unknown value of option 'spatial_temperature' 'learned'"),
    ({"spatial_temperature": 0.0}, r"option 'spatial_temperature' must be > 0, got 0.0"),
])
def test_bad_temperatures_are_one_clear_error(bad, match):
    with pytest.raises(SkdError, match=match):
        SKDOptions.from_dict(bad)


# --- attention entropy monitor ---------------------------------------------------------------------


def test_normalized_entropy_is_one_for_uniform_rows_and_zero_for_one_hot_rows():
    assert normalized_entropy(torch.full((2, 3, 5), 0.2)).item() == pytest.approx(1.0, abs=1e-6)
    assert normalized_entropy(torch.eye(5).expand(2, 5, 5)).item() == 0.0
    half = torch.tensor([[0.5, 0.5, 0.0, 0.0]])  # H = log 2 of log 4
    assert normalized_entropy(half).item() == pytest.approx(0.5, abs=1e-6)


def test_mca_entropy_of_uniform_and_one_hot_maps():
    flat = torch.ones(1, 4, 3, 3)  # every student channel (and token) alike: uniform rows
    teacher = torch.randn(1, 4, 3, 3)
    uniform = CrossNetAttention("both", temperature=0.01).entropy(flat, teacher)
    assert uniform["channel"].item() == pytest.approx(1.0, abs=1e-6)
    assert uniform["spatial"].item() == pytest.approx(1.0, abs=1e-6)
    one_hot = torch.eye(4).reshape(1, 4, 2, 2)  # channel c = token c: orthonormal rows and tokens
    sharp = CrossNetAttention("both", temperature=1e-3).entropy(one_hot, one_hot)
    assert sharp["channel"].item() < 1e-6 and sharp["spatial"].item() < 1e-6


def test_spatial_entropy_reads_at_most_256_evenly_spaced_rows():
    rows = evenly_spaced(20 * 30, 256)
    assert len(rows) == 256 and rows[0] == 0 and rows[-1] == 599 and rows == sorted(set(rows))
    assert evenly_spaced(9, 256) == list(range(9))
    s, t = torch.randn(2, 4, 20, 30, dtype=torch.float64), torch.randn(2, 4, 20, 30, dtype=torch.float64)
    got = CrossNetAttention("spatial", temperature=0.1).entropy(s, t)["spatial"]
    full = spatial_weights(s, t, list(range(600)), 0.1).flatten(2)[:, rows]  # the 600 x 600 map's rows
    want = (-(full * full.log()).sum(-1) / math.log(600)).mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-10)


def test_monitor_logs_entropy_per_tap_and_form_and_the_learned_temperatures():
    lq, gt = _batch()
    distiller = _skd({"temperature": "learned", "contrastive": False})
    recorded = distiller.balance(lq, gt)  # what the training loop logs
    taps = distiller.method.taps
    for path in taps:
        for form in ("channel", "spatial"):
            assert 0.0 < recorded[f"entropy/{path}/{form}"] <= 1.0
            assert recorded[f"temperature/{path}/{form}"] == pytest.approx({"channel": 0.1, "spatial": 0.01}[form])
    with torch.no_grad():
        step = distiller.step(lq, gt)
        s = distiller.method.adapters(taps[0], step.student_feats[taps[0]])
        channel = distiller.method.feature_loss.mca.weights(s, step.teacher_feats[taps[0]], [0])["channel"]
    assert recorded[f"entropy/{taps[0]}/channel"] == pytest.approx(normalized_entropy(channel).item(), rel=1e-5)
    channel_only = _skd({"mca_dims": "channel", "contrastive": False})
    assert set(channel_only.method.monitor(channel_only.step(lq, gt))) == {f"entropy/{p}/channel" for p in taps}
    off = _skd({"mca_dims": "none", "contrastive": False})
    assert off.method.monitor(off.step(lq, gt)) == {}


# --- GK bandwidth by the median heuristic ----------------------------------------------------------


def _hand_median_sigma2(x: torch.Tensor, y: torch.Tensor, reduction: str) -> float:
    """The median over samples of d = sum (or mean) of squared differences, one element at a time."""
    per_sample = []
    for i in range(x.shape[0]):
        sq = [(a - b) ** 2 for a, b in zip(x[i].flatten().tolist(), y[i].flatten().tolist(), strict=True)]
        per_sample.append(sum(sq) / len(sq) if reduction == "mean" else sum(sq))
    return statistics.median(per_sample)


@pytest.mark.parametrize("reduction,batch", [("mean", 4), ("sum", 5)])
def test_median_sigma_equals_a_hand_computation_per_tap(reduction, batch):
    g = torch.Generator().manual_seed(3)
    s = {"a": torch.randn(batch, 3, 4, 4, generator=g, dtype=torch.float64),
         "b": 2 * torch.randn(batch, 6, 2, 2, generator=g, dtype=torch.float64)}
    t = {k: torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in s.items()}
    bandwidth = MedianBandwidth(["a", "b"]).double()
    loss = SKDFeatureLoss(GaussianKernelDistance(None, reduction), CrossNetAttention("channel"), 0.5,
                          bandwidth=bandwidth)
    assert bandwidth.values() == {}  # not fitted before the first call
    parts = loss(s, t)
    assert bool(bandwidth.fitted)
    for path in ("a", "b"):
        assert bandwidth(path).item() ** 2 == pytest.approx(_hand_median_sigma2(s[path], t[path], reduction), rel=1e-12)
    gk = GaussianKernelDistance(None, reduction)
    want_feature = sum(gk(s[p], t[p], bandwidth(p)) for p in s)  # each tap at its own sigma ...
    want_channel = sum(0.5 * gk(CrossNetAttention("channel")(s[p], t[p])["channel"], t[p], bandwidth(p)) for p in s)
    assert parts["feature"].item() == pytest.approx(want_feature.item(), rel=1e-12)
    assert parts["channel"].item() == pytest.approx(want_channel.item(), rel=1e-12)  # ... its MCA terms too
    if batch % 2:  # the median sample sits at GK = 1 - exp(-1/2)
        d = gk.sample_distance(s["a"], t["a"])
        middle = d.argsort()[batch // 2]
        value = gk(s["a"][middle:middle + 1], t["a"][middle:middle + 1], bandwidth("a"))
        assert value.item() == pytest.approx(1 - math.exp(-0.5), rel=1e-12)


def test_median_sigma_is_fitted_once_and_kept_through_a_checkpoint(tmp_path):
    first, later = _batch(1, n=3), _batch(2, n=3)
    trained = _skd({"sigma": "median", "contrastive": False})
    trained(*first)
    fitted = trained.method.feature_loss.bandwidth.sigma.clone()
    trained(*later)  # a second call does not refit
    assert torch.equal(trained.method.feature_loss.bandwidth.sigma, fitted)
    assert "method.feature_loss.bandwidth.sigma" in trained.state_dict()
    recorded = trained.balance(*later)
    assert [recorded[f"sigma/{p}"] for p in trained.method.taps] == pytest.approx(fitted.tolist())

    cfg = TrainConfig()
    opt = build_optimizer(trained.trainable_parameters(), cfg)
    save_checkpoint(tmp_path, trained, opt, build_scheduler(opt, cfg), TrainState(step=1))
    resumed = _skd({"sigma": "median", "contrastive": False}, seed=5)
    opt = build_optimizer(resumed.trainable_parameters(), cfg)
    load_checkpoint_into(tmp_path, resumed, opt, build_scheduler(opt, cfg))
    resumed(*later)  # the resumed run's first call: no refit on its batch
    assert torch.equal(resumed.method.feature_loss.bandwidth.sigma, fitted)
    fresh = _skd({"sigma": "median", "contrastive": False})
    fresh(*later)  # without the checkpoint the same call would fit this batch
    assert not torch.equal(fresh.method.feature_loss.bandwidth.sigma, fitted)


def test_median_sigma_only_with_gk_and_bad_sigmas_are_one_clear_error():
    assert _skd({"sigma": "median", "distance": "l1"}).method.feature_loss.bandwidth is None
    fixed = _skd({"sigma": 1.0}).method.feature_loss
    assert fixed.bandwidth is None and fixed.distance.sigma == 1.0
    assert _skd({}).method.feature_loss.bandwidth is not None  # the default: the median heuristic
    for bad, match in [({"sigma": -1}, r"option 'sigma' must be > 0, got -1"),
                       ({"sigma": "mean"}, r"unknown value of option 'sigma' 'mean'; did you mean 'median'\?")]:
        with pytest.raises(SkdError, match=match):
            SKDOptions.from_dict(bad)
    with pytest.raises(ConfigError, match="no sigma of its own"):
        GaussianKernelDistance(None)(torch.zeros(1, 2), torch.zeros(1, 2))


# --- contrastive forms -----------------------------------------------------------------------------


class _Levels:
    """A toy extractor: the image and its 2x2 average pool (two levels); counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, image: torch.Tensor) -> list[torch.Tensor]:
        self.calls += 1
        return [image, F.avg_pool2d(image, 2)]


def _images(batch: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    return tuple(torch.rand(batch, 3, 4, 4, generator=g, dtype=torch.float64) for _ in range(3))


def test_ratio_form_is_bit_identical_to_the_earlier_loss():
    s, t, x = _images()
    s = s.requires_grad_()
    weights = (0.25, 1.0)
    got = ContrastiveLoss(_Levels(), weights)(s, t, x)  # the default form is ratio
    (g_got,) = torch.autograd.grad(got, s)
    phi = _Levels()
    anchor, positive, negative = phi(s), phi(t), phi(x)
    want = s.new_zeros(())
    for w, a, p, n in zip(weights, anchor, positive, negative, strict=True):  # the loop as it always was
        want = want + w * (a - p).abs().mean() / ((a - n).abs().mean() + 1e-7)
    (g_want,) = torch.autograd.grad(want, s)
    assert torch.equal(got, want) and torch.equal(g_got, g_want)


def test_positive_form_equals_a_hand_computation_and_never_reads_the_negative():
    s, t, x = _images()
    phi = _Levels()
    got = ContrastiveLoss(phi, (0.25, 1.0), form="positive")(s, t, x)
    assert phi.calls == 2  # anchor and positive only
    pooled = [F.avg_pool2d(v, 2) for v in (s, t)]
    hand = 0.25 * sum(abs(a - b) for a, b in zip(s.flatten().tolist(), t.flatten().tolist(), strict=True)) / s.numel()
    hand += sum(abs(a - b) for a, b in zip(*(v.flatten().tolist() for v in pooled), strict=True)) / pooled[0].numel()
    assert got.item() == pytest.approx(hand, rel=1e-12)


def _hand_info_nce(a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, tau: float) -> float:
    """Element by element: pool, normalise, cosines, log-softmax at the diagonal, batch mean."""
    def vectors(f: torch.Tensor) -> list[list[float]]:
        out = []
        for sample in f.tolist():
            v = [sum(sum(row) for row in channel) / (len(channel) * len(channel[0])) for channel in sample]
            norm = math.sqrt(sum(c * c for c in v))
            out.append([c / norm for c in v])
        return out

    va, vp, vn = vectors(a), vectors(p), vectors(n)
    total = 0.0
    for i, anchor in enumerate(va):
        logits = [sum(x * y for x, y in zip(anchor, other, strict=True)) / tau for other in [*vp, vn[i]]]
        total += -logits[i] + math.log(sum(math.exp(z) for z in logits))
    return total / len(va)


def test_infonce_form_equals_a_hand_computation_and_falls_when_the_student_matches():
    s, t, x = _images(batch=2)
    phi = _Levels()
    got = ContrastiveLoss(phi, (0.25, 1.0), form="infonce", tau=0.2)(s, t, x)
    pooled = [F.avg_pool2d(v, 2) for v in (s, t, x)]
    hand = 0.25 * _hand_info_nce(s, t, x, 0.2) + _hand_info_nce(*pooled, 0.2)
    assert got.item() == pytest.approx(hand, rel=1e-10)
    g = torch.Generator().manual_seed(5)
    a, p, n = (torch.randn(3, 8, 2, 2, generator=g, dtype=torch.float64) for _ in range(3))  # signed features
    assert info_nce(a, p, n, 0.1).item() == pytest.approx(_hand_info_nce(a, p, n, 0.1), rel=1e-10)
    assert info_nce(p, p, n, 0.1) < info_nce(a, p, n, 0.1)  # student == teacher: the positive wins
    one = info_nce(a[:1], p[:1], n[:1], 0.1)  # a batch of one still has the degraded input as a negative
    assert one.item() == pytest.approx(_hand_info_nce(a[:1], p[:1], n[:1], 0.1), rel=1e-10)


@pytest.mark.parametrize("form", ["ratio", "positive", "infonce"])
def test_each_form_trains_the_student_through_the_distiller(form):
    distiller = _skd({"contrastive_form": form, "mca_dims": "none"})
    method = distiller.method
    assert method.contrastive.form == form
    assert bool(method.negative_taps) == (form != "positive")  # no phi(X) taps for the positive form
    out = distiller(*_batch(n=3))
    assert out.terms["contrastive"] > 0
    out.loss.backward()
    assert sum(p.grad.abs().sum() for p in distiller.student.parameters() if p.grad is not None) > 0


def test_contrastive_options_are_checked():
    assert (SKDOptions().contrastive_form, SKDOptions().infonce_tau) == ("positive", 0.1)  # design.md 1.8
    with pytest.raises(UnknownNameError, match=r"unknown value of option 'contrastive_form' 'foo'.* Valid: "):
        SKDOptions.from_dict({"contrastive_form": "foo"})
    with pytest.raises(ConfigError, match=r"option 'infonce_tau' must be > 0, got 0"):
        SKDOptions.from_dict({"infonce_tau": 0})
    with pytest.raises(UnknownNameError, match="unknown contrastive form 'ration'; did you mean 'ratio'"):
        ContrastiveLoss(_Levels(), form="ration")
