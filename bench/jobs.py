"""One training job = one record: a teacher (content-addressed, trained once per profile, task and
teacher seed, reused by every cell) or a student (scratch or distilled) of a grid cell.

A job's id is the hash of its fully resolved config, its code identity (:mod:`bench.codeid`: the
source that :mod:`skd_core.train.runs`, its model's module and its method's module import) and the
data fingerprints. Where its files go is the run store's business (:mod:`bench.store`); the
computation itself is :mod:`skd_core.train.runs`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import skd_core.methods  # noqa: F401 -- registers the built-in methods
from skd_core.data import data_fingerprint, get_task, load_pairs, parse_spec
from skd_core.errors import ConfigError, SkdError
from skd_core.methods import METHODS
from skd_core.models import MODELS, CheckpointError, build_model, load_checkpoint
from skd_core.train.checkpoint import save_weights
from skd_core.train.evaluate import evaluate
from skd_core.train.runs import DataSettings, RunResult, train_student, train_teacher

from .codeid import code_identity
from .grid import Grid
from .plugins import load_plugins, portable_name
from .plugins import resolve as resolve_plugin
from .profiles import Profile, get_profile
from .provenance import config_hash, provenance
from .replay import ReplaySpec, replaying
from .shipped import import_shipped
from .store import WEIGHTS, CorruptRecordError, RunStore, non_finite_metric

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


def job_id(config: Mapping[str, Any], code: str, profile: Profile, task: str, split: str = "test") -> str:
    """Hash of the resolved config, the code identity and the data fingerprints."""
    return config_hash({"config": config, "code": code, "data": fingerprints(profile, task, split)})


def teacher_id(profile: Profile, task: str, seed: int) -> str:
    cfg = teacher_config(profile, task, seed)
    return job_id(cfg, cfg.get("code", "checkpoint"), profile, task)


def data_settings(profile: Profile, keep_images: Sequence[str] = (), split: str = "test") -> DataSettings:
    return DataSettings(profile.train_data, profile.test_data, profile.layout, profile.eval_max_side,
                        keep_images=tuple(keep_images), test_split=split)


def _artefacts(store: RunStore, folder: Path, result: RunResult, profile: Profile, task: str,
               split: str = "test") -> dict[str, Any]:
    """Keep the run's restored images of the scored split, the evaluated pairs (under that split's
    fingerprint) and its diagnostics in the store; the record fields that point to them."""
    fields: dict[str, Any] = {"outputs": store.save_images(folder, {n: out for n, (_, _, out) in result.kept.items()})}
    pairs = {n: (lq, gt) for n, (lq, gt, _) in result.kept.items()}
    fields["testset"] = store.save_testset(fingerprints(profile, task, split)[split] + f"-{profile.eval_max_side}",
                                           pairs)
    diagnostics = store.save_diagnostics(folder, result.diagnostics)
    if diagnostics:
        fields["diagnostics"], fields["diagnostics_keys"] = diagnostics, list(result.diagnostics)  # method's order
    return fields


def finished_teacher(profile: Profile, task: str, seed: int, store: RunStore,
                     device: torch.device | str = "cpu") -> nn.Module | None:
    """The teacher for (profile, task, seed) if it exists without training (a checkpoint file or a
    finished run in ``store``), else None (also when it cannot be loaded: the caller needs none)."""
    try:
        if not profile.teacher_checkpoint:
            record = store.read_record(store.teacher_dir(teacher_id(profile, task, seed)))
            if record is None or record.get("status", "done") != "done":
                return None
        return ensure_teacher(profile, task, seed, store, device, progress=False)[0]
    except SkdError:
        return None


def ensure_teacher(
    profile: Profile, task: str, seed: int, store: RunStore, device: torch.device | str = "cpu",
    progress: bool = True, resume: bool = True, keep_images: Sequence[str] = (),
) -> tuple[nn.Module, dict[str, Any]]:
    """The frozen teacher for (profile, task, seed) and its record: from ``profile.teacher_checkpoint``
    (scored once), or a finished run, or the teacher shipped with the repository when it is this
    very teacher (:mod:`bench.shipped`), or trained now (under a lock, so concurrent runners train it
    once; it keeps the restorations of ``keep_images`` besides the first test images). A corrupt
    record is set aside and the teacher redone."""
    device = torch.device(device)
    cfg = teacher_config(profile, task, seed)
    tid = teacher_id(profile, task, seed)
    folder = store.teacher_dir(tid)
    with store.lock(folder, "train.lock"):
        try:
            record = store.read_record(folder)
        except CorruptRecordError:
            store.set_aside(folder)
            record = None
        if record is None and not profile.teacher_checkpoint:
            record = import_shipped(store, tid, profile.name, task, profile.test_data, profile.layout,
                                    profile.eval_max_side)
        if record is None:
            record = _run_teacher(profile, task, seed, store, tid, cfg, device, progress, resume, keep_images)
    model = build_model(profile.teacher)
    load_checkpoint(model, profile.teacher_checkpoint or folder / WEIGHTS)
    return model.to(device).eval(), record


def _run_teacher(profile: Profile, task: str, seed: int, store: RunStore, tid: str, cfg: dict[str, Any],
                 device: torch.device, progress: bool, resume: bool, keep_images: Sequence[str]) -> dict[str, Any]:
    folder = store.writable().teacher_dir(tid)
    data = data_settings(profile, keep_images)
    if profile.teacher_checkpoint:  # scored once, so reports have its row and its restorations
        model = load_checkpoint(build_model(profile.teacher), profile.teacher_checkpoint).to(device).eval()
        result = _score_only(model, data, task, device)
        result.fields["source"] = "checkpoint"
    else:
        result = train_teacher(profile.teacher, profile.teacher_train_for(task), data, task, seed, folder, device,
                               progress, resume)
        save_weights(result.model, folder / WEIGHTS)
    record = {"id": tid, "kind": "teacher", "status": "done", "config": cfg, "model": profile.teacher,
              "code": cfg.get("code", "checkpoint"),
              "data": fingerprints(profile, task), **result.fields,
              **_artefacts(store, folder, result, profile, task), "provenance": provenance(), "finished": time.time()}
    if bad := non_finite_metric(record):
        raise FloatingPointError(f"teacher {tid}: non-finite metric {bad}")
    store.write_record(folder, record)
    return record


def _score_only(model: nn.Module, data: DataSettings, task: str, device: torch.device) -> RunResult:
    """Score a given (checkpoint) teacher on the test pairs and keep its restorations per ``data``."""
    test = load_pairs(data.test_data, task, data.layout, "test")
    scores = evaluate(model, test, get_task(task), device, data.eval_max_side, data.keep)
    return RunResult({"metrics": scores.to_dict(), "params": sum(p.numel() for p in model.parameters())},
                     model, scores.kept)


def run_student(job: StudentJob, store: RunStore, device: torch.device | str = "cpu", progress: bool = True,
                resume: bool = True, replay: ReplaySpec | None = None) -> dict[str, Any]:
    """Train and score one student cell; returns (and writes) its record. Any exception (not
    ``KeyboardInterrupt`` or ``SystemExit``) is recorded as a ``failed`` record with its traceback
    and re-raised. With ``replay`` (given by the runner) the teacher's blocks are recorded or
    replayed (:mod:`bench.replay`; exact), and the record's ``teacher_replay`` says how often."""
    device = torch.device(device)
    cid = job.id()
    folder = store.writable().cell_dir(cid)
    config = job.config()
    base = {"id": cid, "kind": "student", "config": config, "data": job.data()}
    try:
        teacher, teacher_record = None, None
        if config["teacher"] is not None:
            teacher, teacher_record = ensure_teacher(job.profile, job.task, job.teacher_seed, store, device, progress,
                                                     keep_images=job.keep_images)
        # scratch students are compared with the teacher too, if it exists without training one
        compared_with = teacher if teacher is not None else finished_teacher(job.profile, job.task, job.teacher_seed,
                                                                              store, device)
        with replaying(teacher, replay) as replayer:
            result = train_student(job.student, job.method, job.options, teacher, job.profile.student_train,
                                   data_settings(job.profile, job.keep_images, job.split), job.task, job.seed,
                                   folder, device, progress, resume, compared_with)
        save_weights(result.model, folder / WEIGHTS)
        record = {**base, "status": "done", "model": job.student, **result.fields,
                  "code": code_identity(job.code_roots()),
                  # the teacher's scores are on the test split: a cell scored on another split omits them
                  "teacher": {"id": teacher_record["id"], "model": teacher_record.get("model"),
                              "metrics": teacher_record.get("metrics") if job.split == "test" else None}
                  if teacher_record else None,
                  **_artefacts(store, folder, result, job.profile, job.task, job.split),
                  **({"teacher_replay": {"role": replay.role, **replayer.stats.as_dict()}} if replayer else {}),
                  "provenance": provenance(), "finished": time.time()}
        if bad := non_finite_metric(record):
            raise FloatingPointError(f"cell {cid}: non-finite metric {bad}")
    except Exception as exc:
        record = {**base, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc(), "provenance": provenance(), "finished": time.time(),
                  "pid": os.getpid()}
        store.write_record(folder, record)
        raise
    store.write_record(folder, record)
    return record


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
