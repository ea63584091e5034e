"""``at``: ``+ at_weight * sum_taps mean (a_S - a_T)^2`` of normalised spatial energy maps
``sum_c F^2`` (attention transfer); no adapters. Default weight 1000, Zagoruyko & Komodakis' beta
for this mean form."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..losses.at import at_loss
from ..taps import DEFAULT_TAPS
from .base import DistillMethod, Step, register_method
from .options import MethodOptions, option


@dataclass(frozen=True)
class ATOptions(MethodOptions):
    at_weight: float = option(1000.0, help="weight of the attention-map term")
    taps: tuple[str, ...] | None = option(None, help="dotted module paths in both models; None: DEFAULT_TAPS")


class AttentionTransfer(DistillMethod):
    """``weight * sum_taps mean (a_S - a_T)^2``; no adapters."""

    def __init__(self, taps: Sequence[str], weight: float) -> None:
        super().__init__(taps, taps)
        self.weight = weight

    def terms(self, step: Step) -> dict[str, torch.Tensor]:
        loss = sum(at_loss(step.student_feats[p], step.teacher_feats[p]) for p in self.teacher_taps)
        return {"at": self.weight * loss}


def build(student: nn.Module, teacher: nn.Module | None, options: ATOptions,
          probe: torch.Tensor | None) -> AttentionTransfer:
    return AttentionTransfer(options.taps or DEFAULT_TAPS, options.at_weight)


register_method("at", build, ATOptions)
