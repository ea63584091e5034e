"""Output KD: ``|S_r - T_r|_1``, the mean absolute difference of the restored images."""

from __future__ import annotations

import torch


def output_kd_loss(student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
    """``mean |S_r - T_r|`` over ``B, C, H, W``."""
    return (student_out - teacher_out).abs().mean()
