"""``scratch``: ``|G - S_r|_1`` only (the distiller's pixel term); needs no teacher, has no options."""

from __future__ import annotations

import torch
from torch import nn

from .base import DistillMethod, Step, register_method
from .options import MethodOptions


class Scratch(DistillMethod):
    """Ground-truth L1 only."""

    def terms(self, step: Step) -> dict[str, torch.Tensor]:
        return {}


def build(student: nn.Module, teacher: nn.Module | None, options: MethodOptions,
          probe: torch.Tensor | None) -> Scratch:
    return Scratch()


register_method("scratch", build, MethodOptions, needs_teacher=False)
