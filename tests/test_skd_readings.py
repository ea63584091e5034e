"""SKD readings that make each term act: MCA temperature (fixed or learned), the attention-entropy
monitor, the median-heuristic GK bandwidth and the contrastive forms (docs/design.md section 1)."""

from __future__ import annotations

import math

import pytest
import torch

from skd_core.errors import ConfigError
from skd_core.mca import (
    DEFAULT_TEMPERATURE,
    CrossNetAttention,
    LearnedTemperature,
    channel_attention,
    spatial_attention,
)
from skd_core.methods import SKDOptions, build_distiller
from skd_core.models import build_model


def _skd(options: dict, seed: int = 0):
    torch.manual_seed(seed)
    student, teacher = build_model("student-smoke"), build_model("teacher-smoke")
    return build_distiller("skd", student, teacher, options, torch.zeros(1, 3, 32, 32))


def _batch(seed: int = 0, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.rand(n, 3, 32, 32, generator=g)


# --- MCA temperature -------------------------------------------------------------------------------


def test_default_temperature_is_the_provisional_rules_value():
    assert DEFAULT_TEMPERATURE == 0.1
    assert SKDOptions().temperature == 0.1 and SKDOptions().temperature_init == 0.1
    assert CrossNetAttention().temperature == 0.1


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
    assert torch.allclose(learned.log_temperature.exp(), torch.full((7, 2), 0.2))
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
    ({"temperature": "learnd"}, r"option 'temperature' must be a number > 0 or 'learned', got 'learnd' "
                                r"\(did you mean 'learned'\?\)"),
    ({"temperature": 0}, r"option 'temperature' must be > 0 or 'learned', got 0"),
    ({"temperature": [0.1]}, r"option 'temperature' must be a finite number > 0 or 'learned'"),
    ({"temperature_init": -1}, r"option 'temperature_init' must be > 0, got -1"),
])
def test_bad_temperatures_are_one_clear_error(bad, match):
    with pytest.raises(ConfigError, match=match):
        SKDOptions.from_dict(bad)
