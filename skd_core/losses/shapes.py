"""Shape checks shared by the width-agnostic feature losses (attention transfer, FAKD)."""

from __future__ import annotations

import torch

from ..errors import ConfigError


def same_spatial(student: torch.Tensor, teacher: torch.Tensor, what: str) -> None:
    """Raise :class:`ConfigError` unless both are ``B, C, H, W`` with equal ``B, H, W`` (any ``C``)."""
    if student.dim() != 4 or student.shape[0] != teacher.shape[0] or student.shape[2:] != teacher.shape[2:]:
        raise ConfigError(f"{what} needs B, C, H, W features of equal B, H, W, got "
                          f"{tuple(student.shape)} and {tuple(teacher.shape)}")
