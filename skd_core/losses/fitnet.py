"""FitNet (Romero et al. 2015): mean squared difference of the adapted student feature (mapped to
the teacher's width by :class:`skd_core.adapters.Adapters`) and the teacher feature."""

from __future__ import annotations

import torch

from ..errors import ConfigError


def fitnet_loss(adapted_student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """``mean (A(S) - T)^2`` for an adapted student feature and a teacher feature of equal shape."""
    if adapted_student.shape != teacher.shape:
        raise ConfigError(f"FitNet needs equal shapes, got {tuple(adapted_student.shape)} and {tuple(teacher.shape)}")
    return (adapted_student - teacher).square().mean()
