"""Restoration tasks: which degradation makes the input, and how the output is scored.

A task names a degradation kind (``noise``, ``blur``, ``rain``, see :mod:`.degrade`) with its
parameters, and the scoring convention: colour space ``"rgb"`` (PSNR/SSIM over R, G, B) or ``"y"``
(BT.601 luma, as the deraining literature scores), and ``crop_border`` pixels removed at each edge
before scoring (0 for every task here, as in the official Restormer test scripts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..registry import Registry


@dataclass(frozen=True)
class TaskInfo:
    """One task: ``kind`` and ``params`` select the degradation; the rest says how to score it."""

    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    color_space: str = "rgb"  # "rgb" or "y"
    crop_border: int = 0
    description: str = ""


TASKS: Registry[TaskInfo] = Registry("task")


def register_task(info: TaskInfo) -> TaskInfo:
    """Add ``info`` under ``info.name``; a duplicate name is rejected."""
    TASKS.register(info.name, info)
    return info


def get_task(task: str | TaskInfo) -> TaskInfo:
    """The :class:`TaskInfo` for a name (unknown names raise with the closest first), or ``task`` itself."""
    return task if isinstance(task, TaskInfo) else TASKS.get(task)


def list_tasks() -> list[TaskInfo]:
    return [TASKS.get(n) for n in TASKS.names()]


for _sigma in (15, 25, 50):
    register_task(TaskInfo(
        f"denoise{_sigma}", "noise", {"sigma": _sigma},
        description=f"additive white Gaussian noise, sigma {_sigma}/255 per RGB channel, not clipped"))
# Straight motion of 7/3 to 7 px. The first kernels (line or random trajectory up to
# 15 px in 21 px) left the cpu teacher under +1 dB even at 1200 steps; with these, 3000 steps give
# +3.4 dB (results/REFERENCE_RUN.md). line_prob < 1 mixes in trajectory kernels.
register_task(TaskInfo(
    "deblur", "blur", {"kernel_size": 11, "max_length": 7.0, "line_prob": 1.0},
    description="motion blur: straight-line kernel of 2.3-7 px at a random angle, mirror padding"))
register_task(TaskInfo(
    "derain", "rain",
    {"density": 0.004, "min_length": 8, "max_length": 24, "max_tilt": 25.0, "strength": 0.85},
    color_space="y",
    description="rendered rain streaks (sparse drops smeared along one random direction), screen-blended"))
