"""Cells and their ids: a grid's cell specs resolved into jobs (:class:`StudentJob`), each with the id
that names its record, and the teachers' ids.

A job's id is the hash of its fully resolved config, its code identity (:mod:`bench.spec.codeid`:
the source that :mod:`skd_core.train.runs`, its model's module and its method's module import) and
the data fingerprints. Where its files go is the run store's business (:mod:`bench.store`); the
computation itself is :mod:`skd_core.train.runs`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.spec.codeid import code_identity
from bench.spec.grid import Grid
from bench.spec.plugins import load_plugins, portable_name
from bench.spec.plugins import resolve as resolve_plugin
from bench.spec.profiles import Profile, get_profile
from skd_core.data import data_fingerprint, get_task, parse_spec
from skd_core.errors import ConfigError, SkdError
from skd_core.methods import METHODS
from skd_core.models import MODELS, CheckpointError
from skd_core.train.runs import DataSettings

from .provenance import config_hash

#: the module where every run's computation starts (a root of every code identity)
RUN_MODULE = "skd_core.train.runs"


#: the splits a student may be scored on: ``test`` (every grid cell), ``val`` (tuning trials: the
#: embedded set's validation crops, carved from the training photos, so no test image is read)
SPLITS = ("test", "val")


def arch_config(model: str) -> dict[str, Any]:
    """What builds preset ``model``: its factory (module and name) and keyword arguments."""
    preset = MODELS.get(model)
    factory = preset.factory
    return {"name": model,
            "factory": f"{portable_name(factory.__module__)}.{getattr(factory, '__qualname__', factory)}",
            "kwargs": preset.kwargs}


@dataclass(frozen=True)
class StudentJob:
    """A fully resolved student run (a grid cell, or a tuning trial). ``plugins`` are imported before
    anything else in whatever process runs it; ``keep_images`` names test images whose restorations
    are kept beside the record (not part of the id); ``split`` is the split it is scored on
    (:data:`SPLITS`; ``val`` needs embedded test data: folder sets have no validation split)."""

    profile: Profile
    task: str
    method: str
    options: dict[str, Any]
    student: str
    seed: int
    teacher_seed: int = 0
    plugins: tuple[str, ...] = ()
    keep_images: tuple[str, ...] = ()
    split: str = "test"

    @classmethod
    def create(cls, profile: str | Profile = "cpu", task: str = "denoise25", method: str = "skd",
               options: Mapping[str, Any] | None = None, student: str | None = None, seed: int = 0,
               teacher_seed: int = 0, profile_overrides: Mapping[str, Any] | None = None,
               plugins: Sequence[str] = (), keep_images: Sequence[str] = (), split: str = "test") -> StudentJob:
        load_plugins(plugins)
        prof = get_profile(profile) if isinstance(profile, str) else profile
        if profile_overrides:
            prof = prof.override(profile_overrides)
        for name, value in (("seed", seed), ("teacher_seed", teacher_seed)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        get_task(task)
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if split != "test" and parse_spec(data_spec(prof.test_data, "test_data")).source != "embedded":
            raise ConfigError(f"split {split!r} needs the embedded data set (test_data {prof.test_data!r} is a "
                              "folder, which has no validation split)")
        spec = METHODS.get(method)
        MODELS.get(student or prof.student)
        opts = spec.options({**prof.method_options.get(method, {}), **(options or {})}).as_dict()
        return cls(prof, task, method, opts, student or prof.student, seed, teacher_seed, tuple(plugins),
                   tuple(keep_images), split)

    def code_roots(self) -> list[str]:
        return [RUN_MODULE, METHODS.get(self.method).module, MODELS.get(self.student).factory.__module__]

    def config(self) -> dict[str, Any]:
        """The resolved config (what the cell id hashes, with code identity and data fingerprints)."""
        needs_teacher = METHODS.get(self.method).needs_teacher
        return {
            "kind": "student", "profile": self.profile.name, "task": self.task, "method": self.method,
            "options": self.options, "student": self.student, "arch": arch_config(self.student), "seed": self.seed,
            "train": self.profile.student_train.to_dict(), "train_data": self.profile.train_data,
            "test_data": self.profile.test_data, "layout": self.profile.layout,
            "eval_max_side": self.profile.eval_max_side,
            "teacher": teacher_config(self.profile, self.task, self.teacher_seed) if needs_teacher else None,
            # only where it is not the test split, so that every test-split cell keeps its id
            **({"split": self.split} if self.split != "test" else {}),
        }

    def data(self) -> dict[str, str]:
        """The fingerprints of the data this job trains and is scored on."""
        return fingerprints(self.profile, self.task, self.split)

    def id(self) -> str:
        return job_id(self.config(), code_identity(self.code_roots()), self.profile, self.task, self.split)


@dataclass(frozen=True)
class Cell:
    """One grid cell resolved: a variant (``label``) at one task and seed, with its job."""

    label: str
    task: str
    seed: int
    job: StudentJob
    axes: dict[str, Any]

    @functools.cached_property
    def id(self) -> str:
        return self.job.id()


def cells_of(grid: Grid) -> list[Cell]:
    """Every cell of ``grid`` resolved into a job (plugins imported first); an invalid cell raises a
    :class:`ConfigError` naming the grid file and the cell."""
    plugins = tuple(resolve_plugin(p, grid.path.parent) for p in grid.plugins)
    cells = []
    for spec in grid.cells:
        try:
            job = StudentJob.create(grid.profile, spec.task, spec.method, spec.options, spec.student, spec.seed,
                                    grid.teacher_seed, spec.profile_overrides, plugins, grid.qualitative.images or ())
        except SkdError as exc:
            raise ConfigError(f"{grid.path}: cell {spec.label!r}: {exc}") from exc
        cells.append(Cell(spec.label, spec.task, spec.seed, job, spec.axes))
    return cells


def teacher_config(profile: Profile, task: str, seed: int) -> dict[str, Any]:
    """A teacher's resolved config, its code identity included (so a cell's config changes with it)."""
    if profile.teacher_checkpoint:
        return {"kind": "teacher", "model": profile.teacher, "checkpoint": str(profile.teacher_checkpoint),
                "checkpoint_sha256": file_digest(profile.teacher_checkpoint), "test_data": profile.test_data,
                "layout": profile.layout, "eval_max_side": profile.eval_max_side}
    roots = [RUN_MODULE, METHODS.get("scratch").module, MODELS.get(profile.teacher).factory.__module__]
    return {"kind": "teacher", "profile": profile.name, "model": profile.teacher, "arch": arch_config(profile.teacher),
            "task": task, "seed": seed, "train": profile.teacher_train_for(task).to_dict(),
            "train_data": profile.train_data, "test_data": profile.test_data, "layout": profile.layout,
            "eval_max_side": profile.eval_max_side, "code": code_identity(roots)}


def teacher_id(profile: Profile, task: str, seed: int) -> str:
    cfg = teacher_config(profile, task, seed)
    return job_id(cfg, cfg.get("code", "checkpoint"), profile, task)


def job_id(config: Mapping[str, Any], code: str, profile: Profile, task: str, split: str = "test") -> str:
    """Hash of the resolved config, the code identity and the data fingerprints."""
    return config_hash({"config": config, "code": code, "data": fingerprints(profile, task, split)})


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (a checkpoint teacher's identity: replacing the file at the same
    path makes a new teacher); cached per process by path, size and modification time."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    stat = path.stat()
    return _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def data_spec(spec: str, what: str) -> str:
    if not spec:
        raise ConfigError(f"profile needs {what} (e.g. 'folder:/data/Rain13K' or 'embedded')")
    return spec


def fingerprints(profile: Profile, task: str, split: str = "test") -> dict[str, str]:
    """``{"train": ..., split: ...}``: the training data's and the scored split's fingerprints."""
    train = data_spec(profile.train_data, "train_data")
    test = data_spec(profile.test_data, "test_data")
    return {"train": _fingerprint(train, task, profile.layout, "train"),
            split: _fingerprint(test, task, profile.layout, split)}


@functools.lru_cache(maxsize=64)
def _fingerprint(spec: str, task: str, layout: str | None, split: str) -> str:
    """Cached per process: a folder fingerprint hashes every file."""
    return data_fingerprint(spec, task, layout, split)


def data_settings(profile: Profile, keep_images: Sequence[str] = (), split: str = "test") -> DataSettings:
    return DataSettings(profile.train_data, profile.test_data, profile.layout, profile.eval_max_side,
                        keep_images=tuple(keep_images), test_split=split)


def needs_teacher(cell: Cell) -> bool:
    """Whether ``cell``'s method distils from a teacher."""
    return METHODS.get(cell.job.method).needs_teacher


def cell_teacher(cell: Cell) -> str:
    """The id of the teacher of ``cell``'s profile, task and teacher seed."""
    return teacher_id(cell.job.profile, cell.task, cell.job.teacher_seed)
