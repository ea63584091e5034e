"""``fakd``: ``+ fakd_weight * sum_taps mean |A_S - A_T|`` of spatial affinity matrices; no adapters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..losses.fakd import fakd_loss
from .base import DistillMethod, Step, register_method
from .options import MethodOptions, option

#: FAKD's default taps (*ours*): the H/4 and H/8 levels, where the ``N x N`` affinity is cheap
#: (N = 1024 and 256 for a 128x128 crop); full-resolution taps work but cost O(N^2 C).
FAKD_TAPS: tuple[str, ...] = ("encoder_level3", "latent", "decoder_level3")


@dataclass(frozen=True)
class FAKDOptions(MethodOptions):
    fakd_weight: float = option(1.0, help="weight of the affinity term")
    taps: tuple[str, ...] | None = option(None, help="dotted module paths in both models; None: FAKD_TAPS")


class FAKD(DistillMethod):
    """``weight * sum_taps mean |A_S - A_T|``; no adapters."""

    def __init__(self, taps: Sequence[str], weight: float) -> None:
        super().__init__(taps, taps)
        self.weight = weight

    def terms(self, step: Step) -> dict[str, torch.Tensor]:
        loss = sum(fakd_loss(step.student_feats[p], step.teacher_feats[p]) for p in self.teacher_taps)
        return {"fakd": self.weight * loss}


def build(student: nn.Module, teacher: nn.Module | None, options: FAKDOptions,
          probe: torch.Tensor | None) -> FAKD:
    return FAKD(options.taps or FAKD_TAPS, options.fakd_weight)


register_method("fakd", build, FAKDOptions)
