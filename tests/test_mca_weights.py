"""The MCA weight maps behind the attention figure equal a literal float64 computation and are the
weights the loss path attends with."""

from __future__ import annotations

import pytest
import torch

from skd_core.errors import ConfigError
from skd_core.mca import CrossNetAttention, attention_weights, channel_attention, channel_weights, spatial_weights


def _rows(x: torch.Tensor, normalize: str) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True) if normalize == "l2" else x


@pytest.mark.parametrize("normalize,lam", [("l2", 1.0), ("l2", 0.2), ("none", 3.0)])
def test_weights_equal_explicit_float64(normalize: str, lam: float) -> None:
    s, t = torch.randn(2, 6, 4, 5, dtype=torch.float64), torch.randn(2, 6, 4, 5, dtype=torch.float64)
    queries = [0, 7, 19]
    got = attention_weights(s, t, queries, lam, normalize)
    for i in range(2):
        sc, tc = s[i].reshape(6, 20), t[i].reshape(6, 20)  # C x N
        channel = torch.softmax(_rows(tc, normalize) @ _rows(sc, normalize).T / lam, dim=1)  # C_T x C_S
        full = torch.softmax(_rows(tc.T, normalize) @ _rows(sc.T, normalize).T / lam, dim=1)  # N x N
        assert torch.allclose(got["channel"][i], channel, atol=1e-12)
        assert torch.allclose(got["spatial"][i].reshape(3, 20), full[queries], atol=1e-12)
    assert got["spatial"].shape == (2, 3, 4, 5)


def test_channel_weights_across_widths_and_shared_with_the_loss_path() -> None:
    s, t = torch.randn(1, 3, 4, 4, dtype=torch.float64), torch.randn(1, 5, 4, 4, dtype=torch.float64)
    w = channel_weights(s, t, 0.5)
    assert w.shape == (1, 5, 3) and torch.allclose(w.sum(-1), torch.ones(1, 5, dtype=torch.float64))
    assert torch.equal(channel_attention(s, t, 0.5), (w @ s.flatten(2)).reshape(1, 5, 4, 4))


def test_module_weights_use_its_settings_and_bad_queries_fail() -> None:
    s, t = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3)
    mca = CrossNetAttention("channel", temperature=0.3, normalize="none")
    assert torch.equal(mca.weights(s, t, [4])["spatial"], spatial_weights(s, t, [4], 0.3, "none"))
    with pytest.raises(ConfigError, match=r"token indices in \[0, 9\)"):
        spatial_weights(s, t, [9])
