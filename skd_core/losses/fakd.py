"""FAKD (He et al. 2020, their code's form): affinity ``A = F_hat^T F_hat`` (``N x N``) of features
normalised per position over channels (``F / (||F||_c + 1e-7)``), then ``mean(|A_S - A_T|)``.
Width-agnostic: no adapter.

Memory: the ``N x N`` maps are built whole only while ``B*N*N <= max_elements``; above that the
mean is accumulated over row blocks, each recomputed in the backward (activation checkpointing), so
memory stays ``O(max_elements)`` while compute stays ``O(N^2 C)``. Because that compute is
quadratic, the FAKD method taps the low-resolution levels by default
(:data:`skd_core.methods.fakd.FAKD_TAPS`, *ours*).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from .shapes import same_spatial

FAKD_EPS = 1e-7
#: elements of ``B x N x N`` affinity built at once by :func:`fakd_loss` (64 MiB of float32: the
#: default low-resolution taps of a batch of 8 128x128 crops fit whole, full-resolution taps do not)
FAKD_MAX_ELEMENTS = 2**24


def _normalised_positions(feature: torch.Tensor) -> torch.Tensor:
    f = feature.flatten(2)  # B, C, N
    return f / (f.square().sum(1, keepdim=True).sqrt() + FAKD_EPS)


def _affinity_l1_sum(s_hat: torch.Tensor, t_hat: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """``sum |A_S - A_T|`` over affinity rows ``start:stop`` (a ``B, rows, N`` block of each)."""
    a_s = s_hat[:, :, start:stop].transpose(1, 2) @ s_hat
    a_t = t_hat[:, :, start:stop].transpose(1, 2) @ t_hat
    return (a_s - a_t).abs().sum()


def fakd_loss(student: torch.Tensor, teacher: torch.Tensor, max_elements: int = FAKD_MAX_ELEMENTS) -> torch.Tensor:
    """FAKD: ``mean |A_S - A_T|`` over ``B x N x N`` spatial affinities (any widths), built in row
    blocks of at most ``max_elements`` elements (see the module docstring)."""
    same_spatial(student, teacher, "FAKD")
    s_hat, t_hat = _normalised_positions(student), _normalised_positions(teacher)
    b, _, n = s_hat.shape
    if b * n * n <= max_elements:
        return _affinity_l1_sum(s_hat, t_hat, 0, n) / (b * n * n)
    rows = max(1, max_elements // (b * n))
    total = s_hat.new_zeros(())
    for start in range(0, n, rows):
        total = total + checkpoint(_affinity_l1_sum, s_hat, t_hat, start, min(start + rows, n), use_reentrant=False)
    return total / (b * n * n)
