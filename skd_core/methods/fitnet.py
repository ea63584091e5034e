"""``fitnet``: ``+ fitnet_weight * sum_taps mean (A(S) - T)^2`` with 1x1 adapters ``A`` (student to
teacher width; training overhead, never counted as student cost)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..adapters import Adapters
from ..losses.fitnet import fitnet_loss
from ..taps import DEFAULT_TAPS
from .base import DistillMethod, Step, need_probe, register_method
from .options import MethodOptions, option


@dataclass(frozen=True)
class FitNetOptions(MethodOptions):
    fitnet_weight: float = option(1.0, help="weight of the feature term")
    taps: tuple[str, ...] | None = option(None, help="dotted module paths in both models; None: DEFAULT_TAPS")


class FitNet(DistillMethod):
    """``weight * sum_taps mean (A(S) - T)^2``."""

    def __init__(self, taps: Sequence[str], adapters: Adapters, weight: float) -> None:
        super().__init__(taps, taps)
        self.adapters = adapters
        self.weight = weight

    def terms(self, step: Step) -> dict[str, torch.Tensor]:
        loss = sum(fitnet_loss(self.adapters(p, step.student_feats[p]), step.teacher_feats[p])
                   for p in self.teacher_taps)
        return {"fitnet": self.weight * loss}


def build(student: nn.Module, teacher: nn.Module | None, options: FitNetOptions,
          probe: torch.Tensor | None) -> FitNet:
    taps = options.taps or DEFAULT_TAPS
    return FitNet(taps, Adapters.from_probe(student, teacher, taps, need_probe("fitnet", probe)),
                  options.fitnet_weight)


register_method("fitnet", build, FitNetOptions)
