"""A user's methods, outside the package, for the plugin tests and the guide: one with an option of
its own, one that fails with a plain TypeError."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from skd_core.methods import DistillMethod, MethodOptions, Step, option, register_method


@dataclass(frozen=True)
class OutputL2Options(MethodOptions):
    output_l2_weight: float = option(0.5, help="weight of the squared difference to the teacher's output")


class OutputL2(DistillMethod):
    """``weight * mean (S_r - T_r)^2``."""

    needs_teacher_output = True

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = weight

    def terms(self, step: Step) -> dict[str, torch.Tensor]:
        return {"output_l2": self.weight * (step.student_out - step.teacher_out).square().mean()}


class Broken(OutputL2):
    def terms(self, step: Step) -> dict[str, torch.Tensor]:
        return {"broken": len(step)}  # TypeError: a Step has no len()


def output_l2(student: nn.Module, teacher: nn.Module | None, options: OutputL2Options,
              probe: torch.Tensor | None) -> OutputL2:
    return OutputL2(options.output_l2_weight)


def broken(student: nn.Module, teacher: nn.Module | None, options: OutputL2Options,
           probe: torch.Tensor | None) -> Broken:
    return Broken(options.output_l2_weight)


register_method("output_l2", output_l2, OutputL2Options)
register_method("broken", broken, OutputL2Options)
