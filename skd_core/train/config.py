"""Optimisation settings of one training run, as plain validated data."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, check_keys

OPTIMIZERS = ("adamw", "adam")
SCHEDULES = ("cosine", "constant")
AMP = ("none", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """One run's optimisation. Steps are optimizer steps (iterations), not epochs.

    ``lr`` peaks after ``warmup_steps`` of linear warm-up, then follows ``schedule`` down to
    ``min_lr`` at ``steps``. ``amp="bf16"`` is bf16 autocast, used on CUDA only (CPU runs fp32).
    ``grad_clip`` is the max global L2 norm (0 disables). ``val_every``/``checkpoint_every`` are in
    steps (0 disables periodic validation / checkpoints; the end of the run always checkpoints).
    """

    steps: int = 1000
    batch: int = 8
    crop: int = 64
    lr: float = 3e-4
    min_lr: float = 1e-6
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    optimizer: str = "adamw"
    schedule: str = "cosine"
    warmup_steps: int = 0
    grad_clip: float = 0.01
    amp: str = "none"
    val_every: int = 0
    val_crop: int = 128
    checkpoint_every: int = 0
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default

    def __post_init__(self) -> None:
        for name, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("amp", AMP)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"train.{name} must be one of {choices}, got {getattr(self, name)!r}")
        for name in ("steps", "batch", "crop"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.warmup_steps < self.steps:
            raise ConfigError(f"train.warmup_steps must be in [0, steps), got {self.warmup_steps}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "train") -> TrainConfig:
        """Build from plain data; an unknown key names the closest valid one."""
        check_keys(data, [f.name for f in dataclasses.fields(cls)], "train key", where)
        data = dict(data)
        if "betas" in data:
            data["betas"] = tuple(data["betas"])
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
