"""Attention Transfer (Zagoruyko & Komodakis 2017, their code's form): spatial energy map
``a = sum_c F^2`` flattened to ``B, N`` and L2-normalised per sample, then ``mean((a_S - a_T)^2)``.
Width-agnostic: no adapter."""

from __future__ import annotations

import torch

from .shapes import same_spatial


def attention_map(feature: torch.Tensor) -> torch.Tensor:
    """Spatial energy ``sum_c F^2`` of ``B, C, H, W`` as ``B, H*W``, L2-normalised per sample."""
    return torch.nn.functional.normalize(feature.square().sum(1).flatten(1), dim=1)


def at_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Attention Transfer: ``mean((a_S - a_T)^2)`` of :func:`attention_map` (any widths)."""
    same_spatial(student, teacher, "attention transfer")
    return (attention_map(student) - attention_map(teacher)).square().mean()
