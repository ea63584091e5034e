"""One optimisation step of a distillation method, and its parts, as timed callables.

Used by the training-step benchmarks, the ratio guards in the tests and ``results/perf.md``: a
step is what :func:`skd_core.train.loop.fit` does per batch (distiller forward, backward, optimizer
step; no data loading), on a fixed random batch ``B, 3, crop, crop`` in [0, 1]. The parts give the
floor an SKD step is compared with: a teacher forward (``no_grad``, eval) plus a plain student
step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..methods import METHODS, Distiller, build_distiller
from ..models import build_model
from ..train.config import TrainConfig
from ..train.schedule import build_optimizer


@dataclass
class StepCase:
    """Callables over one fixed batch: ``step()`` one training step of ``method``;
    ``teacher_forward()`` the frozen teacher's forward alone (``None`` without a teacher)."""

    method: str
    distiller: Distiller
    step: Callable[[], None]
    teacher_forward: Callable[[], None] | None
    batch: int
    crop: int
    student_params: int
    adapter_params: int


def make_step(
    method: str, student: str, teacher: str | nn.Module | None, batch: int, crop: int,
    options: Mapping[str, Any] | None = None, device: torch.device | str = "cpu", seed: int = 0,
) -> StepCase:
    """A :class:`StepCase` for ``method`` on presets ``student`` / ``teacher`` (name or a built,
    frozen module; ignored by methods that need none), Adam with the default :class:`TrainConfig`."""
    device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    lq = torch.rand(batch, 3, crop, crop, generator=generator).to(device)
    gt = torch.rand(batch, 3, crop, crop, generator=generator).to(device)
    torch.manual_seed(seed)
    net = build_model(student).to(device)
    frozen = None
    if teacher is not None:
        frozen = build_model(teacher) if isinstance(teacher, str) else teacher
        frozen = frozen.to(device).requires_grad_(False).eval()
    uses_teacher = METHODS.get(method).needs_teacher
    distiller = build_distiller(method, net, frozen if uses_teacher else None, options, lq[:1]).to(device)
    params = list(distiller.trainable_parameters())
    opt = build_optimizer(params, TrainConfig())

    def step() -> None:
        out = distiller(lq, gt)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    def teacher_forward() -> None:
        with torch.no_grad():
            frozen(lq)

    return StepCase(method, distiller, step, teacher_forward if frozen is not None else None, batch, crop,
                    sum(p.numel() for p in net.parameters()),
                    sum(p.numel() for p in distiller.method.parameters()))
