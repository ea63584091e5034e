"""Optimisation settings of one training run, as plain validated data."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, check_keys, closest_first

OPTIMIZERS = ("adamw", "adam")
SCHEDULES = ("cosine", "constant")
AMP = ("none", "bf16")
#: a centre crop for scoring (``val_crop``, a profile's ``eval_max_side``, ``eval --max-side``) is
#: 0 (whole images) or at least this side: crops are rounded down to a multiple of 8 and SSIM's
#: window needs 11 pixels
MIN_EVAL_SIDE = 16


@dataclass(frozen=True)
class TrainConfig:
    """One run's optimisation. Steps are optimizer steps (iterations), not epochs.

    ``lr`` peaks after ``warmup_steps`` of linear warm-up, then follows ``schedule`` down to
    ``min_lr`` at ``steps``. ``amp="bf16"`` is bf16 autocast, used on CUDA only (CPU runs fp32).
    ``grad_clip`` is the max global L2 norm (0 disables). ``val_every``/``checkpoint_every`` are in
    steps (0 disables periodic validation / checkpoints; the end of the run always checkpoints).
    Every field is type- and range-checked on construction; numbers given as ints for float fields
    are stored as floats, so equal settings hash equally.
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
        for name, value in check_train_values(self.to_dict(), "train").items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "train") -> TrainConfig:
        """Build from plain data (missing keys take the defaults); an unknown key names the closest
        valid one, a bad value is a :class:`ConfigError` naming ``where.key``."""
        fields = dataclasses.fields(cls)
        check_keys(data, [f.name for f in fields], "train key", where)
        return cls(**check_train_values({**{f.name: f.default for f in fields}, **data}, where))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: int fields and their minimum
_INTS = {"steps": 1, "batch": 1, "crop": 1, "warmup_steps": 0, "val_every": 0, "val_crop": 0,
         "checkpoint_every": 0, "threads": 0}
#: float fields and whether 0 is allowed (all must be finite and not negative)
_FLOATS = {"lr": False, "min_lr": True, "weight_decay": True, "grad_clip": True}
_CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "amp": AMP}


def is_int(value: object) -> bool:
    """An int that is not a bool (YAML ``true`` is not a number here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def as_number(value: object) -> float | None:
    """``value`` as a finite float if it is a real number (not a bool), or a string in exponent
    notation such as ``"3e-4"`` (which YAML 1.1 reads as a string); else None."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def check_eval_side(value: object, name: str) -> int:
    """``value`` if it is 0 or an int >= :data:`MIN_EVAL_SIDE`, else a :class:`ConfigError` naming ``name``."""
    if not is_int(value) or not (value == 0 or value >= MIN_EVAL_SIDE):
        raise ConfigError(f"{name} must be 0 (whole images) or an integer >= {MIN_EVAL_SIDE}, got {value!r}")
    return value


def check_train_values(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Every :class:`TrainConfig` field of ``values`` checked (type and range) and normalised (floats
    as float, ``betas`` as a tuple); a bad one raises a :class:`ConfigError` naming ``where.key``."""
    out = dict(values)
    for name, minimum in _INTS.items():
        value = out[name]
        if not is_int(value) or value < minimum:
            raise ConfigError(f"{where}.{name} must be an integer >= {minimum}, got {value!r}")
    check_eval_side(out["val_crop"], f"{where}.val_crop")
    for name, zero_ok in _FLOATS.items():
        number = as_number(out[name])
        if number is None or number < 0 or (number == 0 and not zero_ok):
            raise ConfigError(f"{where}.{name} must be a number {'>=' if zero_ok else '>'} 0, got {out[name]!r}")
        out[name] = number
    if out["min_lr"] > out["lr"]:
        raise ConfigError(f"{where}.min_lr ({out['min_lr']}) must not exceed {where}.lr ({out['lr']})")
    betas = out["betas"]
    numbers = [as_number(b) for b in betas] if isinstance(betas, (list, tuple)) else []
    if len(numbers) != 2 or any(b is None or not 0 <= b < 1 for b in numbers):
        raise ConfigError(f"{where}.betas must be two numbers in [0, 1), got {betas!r}")
    out["betas"] = tuple(numbers)
    for name, choices in _CHOICES.items():
        value = out[name]
        if value not in choices:
            hint = f"; did you mean {closest_first(value, choices)[0]!r}?" if isinstance(value, str) else ""
            raise ConfigError(f"{where}.{name} must be one of {', '.join(choices)}, got {value!r}{hint}")
    if out["warmup_steps"] >= out["steps"]:
        raise ConfigError(f"{where}.warmup_steps must be in [0, steps={out['steps']}), got {out['warmup_steps']}")
    return out
