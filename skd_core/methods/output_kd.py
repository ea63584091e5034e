"""``output_kd``: ``+ output_kd_weight * |S_r - T_r|_1`` (L1 to the teacher's restored image)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..losses.output_kd import output_kd_loss
from .base import DistillMethod, Step, register_method
from .options import MethodOptions, option


@dataclass(frozen=True)
class OutputKDOptions(MethodOptions):
    output_kd_weight: float = option(1.0, help="weight of |S_r - T_r|_1")


class OutputKD(DistillMethod):
    """``weight * |S_r - T_r|_1``."""

    needs_teacher_output = True

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = weight

    def terms(self, step: Step) -> dict[str, torch.Tensor]:
        return {"output_kd": self.weight * output_kd_loss(step.student_out, step.teacher_out)}


def build(student: nn.Module, teacher: nn.Module | None, options: OutputKDOptions,
          probe: torch.Tensor | None) -> OutputKD:
    return OutputKD(options.output_kd_weight)


register_method("output_kd", build, OutputKDOptions)
