"""Cross-net attention: both forms equal a literal float64 reference; the spatial form's memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from skd_core.errors import ConfigError, UnknownNameError
from skd_core.mca import DEFAULT_TEMPERATURE, CrossNetAttention, channel_attention, spatial_attention

REPO = Path(__file__).resolve().parents[1]
PEAK_SCRIPT = REPO / "tests" / "benchmarks" / "mca_peak_memory.py"


def _unit(v: torch.Tensor, normalize: str) -> torch.Tensor:
    return v / v.norm() if normalize == "l2" else v


def spatial_reference(s: torch.Tensor, t: torch.Tensor, lam: float, normalize: str) -> torch.Tensor:
    """``S_s[:, n] = sum_m softmax_m(<t_n, s_m> / lam) s_m``, one token at a time, float64."""
    b, c, h, w = s.shape
    s, t = s.double().reshape(b, c, -1), t.double().reshape(b, c, -1)
    out = torch.zeros_like(s)
    for i in range(b):
        for n in range(s.shape[2]):
            q = _unit(t[i, :, n], normalize)
            logits = torch.stack([q @ _unit(s[i, :, m], normalize) for m in range(s.shape[2])]) / lam
            out[i, :, n] = s[i] @ torch.softmax(logits, 0)
    return out.reshape(b, c, h, w)


def channel_reference(s: torch.Tensor, t: torch.Tensor, lam: float, normalize: str) -> torch.Tensor:
    """``S_c = softmax(T S^T / lam) S`` row by row (teacher channel queries), float64."""
    b, c_s, h, w = s.shape
    s, t = s.double().reshape(b, c_s, -1), t.double().reshape(b, t.shape[1], -1)
    out = torch.zeros(b, t.shape[1], s.shape[2], dtype=torch.float64)
    for i in range(b):
        for row in range(t.shape[1]):
            q = _unit(t[i, row], normalize)
            logits = torch.stack([q @ _unit(s[i, j], normalize) for j in range(c_s)]) / lam
            out[i, row] = torch.softmax(logits, 0) @ s[i]
    return out.reshape(b, -1, h, w)


@pytest.mark.parametrize("normalize,lam", [("l2", 1.0), ("l2", 0.1), ("none", 2.0)])
@pytest.mark.parametrize("impl", ["sdpa", "matmul"])
def test_spatial_equals_float64_reference(normalize, lam, impl):
    s, t = torch.randn(2, 5, 3, 4, dtype=torch.float64), torch.randn(2, 5, 3, 4, dtype=torch.float64)
    got = spatial_attention(s, t, lam, normalize, impl)
    assert got.shape == s.shape
    assert (got - spatial_reference(s, t, lam, normalize)).abs().max().item() <= 1e-6


@pytest.mark.parametrize("normalize,lam", [("l2", 1.0), ("l2", 0.1), ("none", 2.0)])
def test_channel_equals_float64_reference_across_widths(normalize, lam):
    s, t = torch.randn(2, 3, 4, 4, dtype=torch.float64), torch.randn(2, 6, 4, 4, dtype=torch.float64)
    got = channel_attention(s, t, lam, normalize)
    assert got.shape == t.shape  # C_T x C_S map applied to S: teacher width
    assert (got - channel_reference(s, t, lam, normalize)).abs().max().item() <= 1e-6


def test_float32_sdpa_matches_reference_and_its_gradient_is_right():
    s, t = torch.randn(1, 4, 4, 4), torch.randn(1, 4, 4, 4)
    assert (spatial_attention(s, t) - spatial_reference(s, t, DEFAULT_TEMPERATURE, "l2")).abs().max().item() <= 1e-5
    s64 = s.double().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: spatial_attention(x, t.double()), (s64,))
    assert torch.autograd.gradcheck(lambda x: channel_attention(x, t.double()), (s64,))


def test_dims_select_the_forms():
    s, t = torch.randn(1, 4, 4, 4), torch.randn(1, 4, 4, 4)
    assert set(CrossNetAttention("both")(s, t)) == {"channel", "spatial"}
    assert set(CrossNetAttention("channel")(s, t)) == {"channel"}
    assert set(CrossNetAttention("spatial")(s, t)) == {"spatial"}
    assert CrossNetAttention("none")(s, t) == {}


def test_bad_arguments_name_the_valid_choices():
    with pytest.raises(UnknownNameError, match=r"unknown MCA dims 'chanel'; did you mean 'channel'\?"):
        CrossNetAttention("chanel")
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        CrossNetAttention(temperature=0.0)
    with pytest.raises(ConfigError, match="adapters"):
        spatial_attention(torch.randn(1, 3, 4, 4), torch.randn(1, 6, 4, 4))


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc/self/clear_refs")
def test_spatial_forward_backward_at_16384_tokens_stays_far_below_the_n_by_n_map():
    """N = 16384 (a 128x128 crop's first level), C = 48. The N x N float32 map alone is 1024 MiB;
    the fused kernel must use a small fraction of it (measured: about 35 MiB)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(PEAK_SCRIPT), "--form", "spatial", "--impl", "sdpa",
                           "--tokens", "16384", "--channels", "48"],
                          capture_output=True, text=True, env=env, check=True)
    record = json.loads(done.stdout)
    assert record["tokens"] == 16384 and record["channels"] == 48
    assert 0 < record["peak_mib"] < 256
