"""Scale profiles: named, inspectable presets of models, data and schedules (docs/design.md section 5).

A grid or a ``skd-bench train`` call names a profile and overrides only what it studies.
``skd-bench profiles`` prints them.

- ``smoke``: CI and tests; tiny models, a few steps, seconds per cell.
- ``cpu`` (default): a laptop or CI box without GPU; small Restormer-family teacher and student on
  the embedded data. The teacher (2.23 M parameters, 3.9x the default student) trains 2000 steps of
  64 px crops, about 1.8 CPU-seconds a step on a 2-core VM, so trained teachers are shipped in
  ``results/teachers/`` and used while their id matches (:mod:`bench.execute.shipped`); its record holds the
  validation curve (every 250 steps) that shows its plateau. The students' schedule is 300 steps
  of 8 x 32 px crops, chosen from the ``budget`` study's learning curves; the measurements behind
  the choice, and what it leaves unmet, are in docs/design.md section 5 ("Why 300 student steps").
- ``paper``: GPU machines; the official Restormer teacher (trained, or an official checkpoint via
  ``teacher_checkpoint``) and the public DCKD student on real datasets from folders. Student
  schedule from the SKD authors' hints (Adam, batch 8, patch 128, cosine); teacher schedule from
  the official Restormer recipe (AdamW 3e-4, betas 0.9/0.999, wd 1e-4, cosine to 1e-6, 300k
  iterations; its progressive patch sizes are replaced by a fixed 128 crop).

Tuned options: where ``bench/tuned/<profile>.yaml`` exists (written by ``skd-bench tune``), its
values are merged into that profile's ``method_options`` when the profile is first looked up
(:func:`get_profile`; never at import) and its provenance is the profile's ``tuning``
(:func:`with_tuned`); :func:`untuned_profile` is the profile as defined here. Model, task and
layout names are checked when a profile is overridden (they live in registries that import torch).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skd_core.errors import ConfigError, check_keys, unknown
from skd_core.registry import Registry
from skd_core.train.config import TrainConfig, check_eval_side, is_int

from .tuned import TUNED_DIR, read_tuned, tuned_path


@dataclass(frozen=True)
class Profile:
    """Everything a cell needs besides the method and what an ablation changes."""

    name: str
    description: str
    teacher: str
    student: str
    teacher_train: TrainConfig
    student_train: TrainConfig
    train_data: str = "embedded"  # "embedded" or "folder:PATH"
    test_data: str = "embedded"
    layout: str | None = None  # folder layout preset for folder data
    teacher_checkpoint: str | None = None  # use this file as the teacher instead of training one
    eval_max_side: int = 0  # 0: evaluate whole test images; else centre-crop to this side
    throughput_size: tuple[int, int] = (256, 256)
    #: profile-wide distillation defaults per method: ``{method: {option: value}}``
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: per-task changes to ``teacher_train`` (e.g. a longer schedule for a harder task)
    teacher_task_train: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: how the tuned part of ``method_options`` was chosen: ``{method: provenance, with "options"}``
    #: from the tuned-options file (:mod:`bench.spec.tuned`); a record of origin, not a setting
    tuning: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def teacher_train_for(self, task: str) -> TrainConfig:
        """``teacher_train`` with this task's entry of ``teacher_task_train`` applied."""
        changes = self.teacher_task_train.get(task)
        if not changes:
            return self.teacher_train
        where = f"profile {self.name!r} teacher_task_train.{task}"
        return TrainConfig.from_dict({**self.teacher_train.to_dict(), **changes}, where=where)

    def override(self, overrides: Mapping[str, Any], where: str = "profile overrides") -> Profile:
        """A copy with ``overrides`` applied; ``teacher_train``/``student_train`` merge key by key,
        ``method_options``/``teacher_task_train`` entry by entry. Every value is type-checked here,
        once; an error names ``where.key`` (a task's teacher schedule is checked in full)."""
        names = [f.name for f in dataclasses.fields(self) if f.name != "tuning"]
        check_keys(overrides, names, "profile key", where)
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            at = f"{where}.{key}"
            if key in ("teacher_train", "student_train", "method_options", "teacher_task_train"):
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{at} must be a mapping, got {value!r}")
                if key in ("teacher_train", "student_train"):
                    changes[key] = TrainConfig.from_dict({**getattr(self, key).to_dict(), **value}, where=at)
                elif key == "method_options":
                    if not all(isinstance(v, Mapping) for v in value.values()):
                        raise ConfigError(f"{at} must map a method to its options, e.g. {{skd: {{alpha3: 0.05}}}}, "
                                          f"got {value!r}")
                    merged = dict(self.method_options)
                    for method, options in value.items():
                        merged[method] = {**merged.get(method, {}), **options}
                    changes[key] = merged
                else:
                    changes[key] = {**getattr(self, key), **value}
            else:
                changes[key] = _checked(key, value, at)
        profile = dataclasses.replace(self, **changes)
        from skd_core.data import TASKS  # the task registry imports the data stack (torch)

        for task, train in profile.teacher_task_train.items():
            at = f"{where}.teacher_task_train.{task}"
            if not isinstance(task, str) or task not in TASKS:
                raise unknown("task", str(task), TASKS.names(), f"{where}.teacher_task_train")
            if not isinstance(train, Mapping):
                raise ConfigError(f"{at} must be a mapping of train keys, got {train!r}")
            TrainConfig.from_dict({**profile.teacher_train.to_dict(), **train}, where=at)
        return profile


def _checked(key: str, value: Any, at: str) -> Any:
    """A scalar profile value checked (and normalised: ``throughput_size`` as a tuple)."""
    if key in ("teacher", "student"):
        from skd_core.models import MODELS  # the model registry imports torch

        if not isinstance(value, str) or value not in MODELS:
            raise unknown("model preset", str(value), MODELS.names(), at)
    elif key == "layout" and value is not None:
        from skd_core.data import LAYOUTS

        if not isinstance(value, str) or value not in LAYOUTS:
            raise unknown("dataset layout", str(value), LAYOUTS.names(), at)
    elif key == "teacher_checkpoint":
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{at} must be a file path or null, got {value!r}")
    elif key == "eval_max_side":
        check_eval_side(value, at)
    elif key == "throughput_size":
        if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(is_int(v) and v > 0 for v in value):
            raise ConfigError(f"{at} must be two positive integers [H, W], got {value!r}")
        return tuple(value)
    elif not isinstance(value, str):  # name, description, train_data, test_data
        raise ConfigError(f"{at} must be a string, got {value!r}")
    return value


#: the profiles as defined here, without tuned options
UNTUNED: Registry[Profile] = Registry("profile")


def profile_names() -> list[str]:
    return UNTUNED.names()


@functools.cache
def get_profile(name: str) -> Profile:
    """Profile ``name`` with its tuned-options file merged (read and checked on the first lookup)."""
    return with_tuned(UNTUNED.get(name))


def untuned_profile(name: str) -> Profile:
    """Profile ``name`` without its tuned options (what a tuning search starts from)."""
    return UNTUNED.get(name)


def with_tuned(profile: Profile, folder: Path = TUNED_DIR) -> Profile:
    """``profile`` with the tuned-options file ``folder/<name>.yaml`` merged, when there is one: its
    values replace the profile's ``method_options`` of the same names, its provenance (with the
    values, under ``"options"``) becomes ``tuning``."""
    tuned = read_tuned(tuned_path(profile.name, folder))
    if tuned is None:
        return profile
    merged = dict(profile.method_options)
    for method, values in tuned.options.items():
        merged[method] = {**merged.get(method, {}), **values}
    tuning = {m: {**tuned.tuning[m], "options": dict(v)} for m, v in tuned.options.items()}
    return dataclasses.replace(profile, method_options=merged, tuning=tuning)


UNTUNED.register("smoke", Profile(
    name="smoke",
    description="CI and tests: tiny models, a few steps on small embedded crops, seconds per cell",
    teacher="teacher-smoke",
    student="student-smoke",
    teacher_train=TrainConfig(steps=6, batch=2, crop=32, lr=1e-3),
    student_train=TrainConfig(steps=4, batch=2, crop=32, lr=1e-3),
    eval_max_side=64,
    throughput_size=(64, 64),
))

UNTUNED.register("cpu", Profile(
    name="cpu",
    description="laptop / CI box without GPU: small Restormer-family teacher and student, embedded data",
    teacher="teacher-cpu",
    student="student-cpu",
    teacher_train=TrainConfig(steps=2000, batch=8, crop=64, lr=2e-3, min_lr=1e-5, warmup_steps=50,
                              grad_clip=0.0, val_every=250),
    student_train=TrainConfig(steps=300, batch=8, crop=32, lr=2e-3, min_lr=1e-5, warmup_steps=10,
                              grad_clip=0.0),
    throughput_size=(128, 128),
))

UNTUNED.register("paper", Profile(
    name="paper",
    description="GPU: official Restormer teacher (trained, or --set teacher_checkpoint=FILE) and the DCKD student "
                "on real datasets from folders (set train_data/test_data/layout)",
    teacher="restormer",
    student="student-dckd",
    teacher_train=TrainConfig(steps=300_000, batch=8, crop=128, lr=3e-4, min_lr=1e-6, weight_decay=1e-4,
                              optimizer="adamw", grad_clip=0.01, amp="bf16", val_every=4000,
                              checkpoint_every=4000),
    student_train=TrainConfig(steps=100_000, batch=8, crop=128, lr=2e-4, min_lr=1e-6, weight_decay=0.0,
                              optimizer="adam", grad_clip=0.01, amp="bf16", val_every=4000,
                              checkpoint_every=4000),
    train_data="",
    test_data="",
    throughput_size=(256, 256),
))
