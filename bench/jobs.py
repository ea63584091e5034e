"""One training job = one record: a teacher (content-addressed, trained once per profile, task and
teacher seed, reused by every cell) or a student (scratch or distilled) of a grid cell.

Layout under ``runs_dir``::

    teachers/<teacher id>/  model.safetensors  record.json  checkpoint/  train.lock
    cells/<cell id>/        model.safetensors  record.json  checkpoint/

Records are written atomically, last; their presence means the job finished.
"""

from __future__ import annotations

import functools
import json
import os
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from skd_core.atomic import atomic_write_json
from skd_core.data import ImagePair, data_fingerprint, get_task, load_pairs, train_crops
from skd_core.errors import ConfigError, SkdError
from skd_core.methods import METHODS, DistillOptions, build_distiller
from skd_core.models import MODELS, build_model, load_checkpoint
from skd_core.similarity import SimilarityProbe
from skd_core.taps import DEFAULT_TAPS
from skd_core.train.checkpoint import save_weights
from skd_core.train.config import TrainConfig
from skd_core.train.evaluate import centre_crop, evaluate
from skd_core.train.loop import fit

from .locks import FileLock
from .profiles import Profile, get_profile
from .provenance import code_version, config_hash, provenance

RECORD = "record.json"
WEIGHTS = "model.safetensors"
#: the similarity probe batch: centre crops (side a multiple of 8, at most PROBE_SIDE) of the
#: first PROBE_IMAGES test inputs
PROBE_IMAGES = 2
PROBE_SIDE = 64


@dataclass(frozen=True)
class StudentJob:
    """A fully resolved student run (a grid cell)."""

    profile: Profile
    task: str
    method: str
    options: dict[str, Any]
    student: str
    seed: int
    teacher_seed: int = 0

    @classmethod
    def create(cls, profile: str | Profile = "cpu", task: str = "denoise25", method: str = "skd",
               options: Mapping[str, Any] | None = None, student: str | None = None, seed: int = 0,
               teacher_seed: int = 0, profile_overrides: Mapping[str, Any] | None = None) -> StudentJob:
        prof = get_profile(profile) if isinstance(profile, str) else profile
        if profile_overrides:
            prof = prof.override(profile_overrides)
        get_task(task)
        METHODS.get(method)
        MODELS.get(student or prof.student)
        opts = DistillOptions.from_dict({**prof.method_options, **(options or {})}).as_dict()
        return cls(prof, task, method, opts, student or prof.student, int(seed), int(teacher_seed))

    def config(self) -> dict[str, Any]:
        """The resolved config (what the cell id hashes, with code version and data fingerprints)."""
        needs_teacher = METHODS.get(self.method).needs_teacher
        return {
            "kind": "student", "profile": self.profile.name, "task": self.task, "method": self.method,
            "options": self.options, "student": self.student, "seed": self.seed,
            "train": self.profile.student_train.to_dict(), "train_data": self.profile.train_data,
            "test_data": self.profile.test_data, "layout": self.profile.layout,
            "eval_max_side": self.profile.eval_max_side,
            "teacher": teacher_config(self.profile, self.task, self.teacher_seed) if needs_teacher else None,
        }

    def id(self) -> str:
        return job_id(self.config(), self.profile, self.task)


def teacher_config(profile: Profile, task: str, seed: int) -> dict[str, Any]:
    if profile.teacher_checkpoint:
        return {"kind": "teacher", "model": profile.teacher, "checkpoint": str(profile.teacher_checkpoint)}
    return {"kind": "teacher", "profile": profile.name, "model": profile.teacher, "task": task, "seed": seed,
            "train": profile.teacher_train_for(task).to_dict(), "train_data": profile.train_data,
            "layout": profile.layout}


def data_spec(spec: str, what: str) -> str:
    if not spec:
        raise ConfigError(f"profile needs {what} (e.g. 'folder:/data/Rain13K' or 'embedded')")
    return spec


def fingerprints(profile: Profile, task: str) -> dict[str, str]:
    train = data_spec(profile.train_data, "train_data")
    test = data_spec(profile.test_data, "test_data")
    return {"train": _fingerprint(train, task, profile.layout, "train"),
            "test": _fingerprint(test, task, profile.layout, "test")}


@functools.lru_cache(maxsize=64)
def _fingerprint(spec: str, task: str, layout: str | None, split: str) -> str:
    """Cached per process: a folder fingerprint hashes every file."""
    return data_fingerprint(spec, task, layout, split)


def job_id(config: Mapping[str, Any], profile: Profile, task: str) -> str:
    """Hash of the resolved config, the code version and the data fingerprints."""
    return config_hash({"config": config, "code": code_version(), "data": fingerprints(profile, task)})


def read_record(folder: Path) -> dict[str, Any] | None:
    path = folder / RECORD
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _train_and_score(
    model: nn.Module, distiller: nn.Module, cfg: TrainConfig, profile: Profile, task: str, seed: int,
    folder: Path, device: torch.device, progress: bool, desc: str, resume: bool, teacher: nn.Module | None = None,
) -> dict[str, Any]:
    """Train, score and save ``model``; with a ``teacher``, the history also logs the linear CKA of
    ``model``'s and the teacher's features at the :data:`DEFAULT_TAPS` both have (``sim/<tap>``,
    see :class:`SimilarityProbe`) on :func:`probe_batch`; models outside the Restormer family
    that have none of them are not probed."""
    data = train_crops(profile.train_data, task, cfg.crop, cfg.steps * cfg.batch, seed, profile.layout)
    test = load_pairs(profile.test_data, task, profile.layout, "test")
    info = get_task(task)
    validate = (lambda: evaluate(model, test, info, device, cfg.val_crop).psnr) if cfg.val_every else None
    taps = shared_taps(model, teacher) if teacher is not None else ()
    probe = SimilarityProbe(model, teacher, probe_batch(test, device), taps) if taps else None
    result = fit(distiller, data, cfg, folder, device=device, resume=resume, validate=validate, probe=probe,
                 progress=progress, desc=desc)
    t0 = time.perf_counter()
    scores = evaluate(model, test, info, device, profile.eval_max_side)
    save_weights(model, folder / WEIGHTS)
    return {"metrics": scores.to_dict(), "eval_seconds": time.perf_counter() - t0,
            "training": {"seconds": result.seconds, "steps": result.steps, "history": result.history,
                         "resumed_from": result.resumed_from}}


def shared_taps(student: nn.Module, teacher: nn.Module) -> tuple[str, ...]:
    """The :data:`DEFAULT_TAPS` paths that exist in both models."""
    s_names, t_names = dict(student.named_modules()), dict(teacher.named_modules())
    return tuple(p for p in DEFAULT_TAPS if p in s_names and p in t_names)


def probe_batch(pairs: Sequence[ImagePair], device: torch.device) -> torch.Tensor:
    """``B, 3, S, S`` centre crops of the first :data:`PROBE_IMAGES` degraded test inputs, ``S`` the
    largest multiple of 8 up to :data:`PROBE_SIDE` that fits them all."""
    chosen = pairs[:PROBE_IMAGES]
    side = min(PROBE_SIDE, *(min(p.lq.shape[:2]) for p in chosen))
    crops = [centre_crop(p.lq, side) for p in chosen]
    return torch.stack([torch.from_numpy(c.transpose(2, 0, 1).copy()).float() for c in crops]).to(device)


def finished_teacher(
    profile: Profile, task: str, seed: int, runs_dir: Path, device: torch.device | str = "cpu",
) -> nn.Module | None:
    """The teacher for (profile, task, seed) if it exists without training (a checkpoint file or a
    finished run under ``runs_dir``), else None."""
    if not profile.teacher_checkpoint:
        tid = job_id(teacher_config(profile, task, seed), profile, task)
        if read_record(runs_dir / "teachers" / tid) is None:
            return None
    return ensure_teacher(profile, task, seed, runs_dir, device, progress=False)[0]


def ensure_teacher(
    profile: Profile, task: str, seed: int, runs_dir: Path, device: torch.device | str = "cpu",
    progress: bool = True, resume: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """The frozen teacher for (profile, task, seed): loaded from ``profile.teacher_checkpoint``, or
    from a finished run, or trained now (under a lock, so concurrent runners train it once)."""
    device = torch.device(device)
    cfg = teacher_config(profile, task, seed)
    if profile.teacher_checkpoint:
        model = load_checkpoint(build_model(profile.teacher), profile.teacher_checkpoint).to(device).eval()
        return model, {"id": config_hash(cfg), "config": cfg, "source": "checkpoint"}
    tid = job_id(cfg, profile, task)
    folder = runs_dir / "teachers" / tid
    with FileLock(folder / "train.lock"):
        record = read_record(folder)
        if record is None:
            record = _run_teacher(profile, task, seed, folder, tid, cfg, device, progress, resume)
    model = build_model(profile.teacher)
    load_checkpoint(model, folder / WEIGHTS)
    return model.to(device).eval(), record


def _run_teacher(profile: Profile, task: str, seed: int, folder: Path, tid: str, cfg: dict[str, Any],
                 device: torch.device, progress: bool, resume: bool) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = build_model(profile.teacher).to(device)
    distiller = build_distiller("scratch", model).to(device)
    out = _train_and_score(model, distiller, profile.teacher_train_for(task), profile, task, seed, folder, device,
                           progress, f"teacher {profile.teacher} {task} seed {seed}", resume)
    record = {"id": tid, "kind": "teacher", "status": "done", "config": cfg, "model": profile.teacher,
              "params": sum(p.numel() for p in model.parameters()), "data": fingerprints(profile, task),
              **out, "provenance": provenance(), "finished": time.time()}
    atomic_write_json(folder / RECORD, record)
    return record


def run_student(job: StudentJob, runs_dir: Path, device: torch.device | str = "cpu", progress: bool = True,
                resume: bool = True) -> dict[str, Any]:
    """Train and score one student cell; returns (and writes) its record. Any error is recorded as a
    ``failed`` record (with traceback) and re-raised."""
    device = torch.device(device)
    cid = job.id()
    folder = runs_dir / "cells" / cid
    config = job.config()
    base = {"id": cid, "kind": "student", "config": config, "data": fingerprints(job.profile, job.task)}
    try:
        teacher, teacher_record = None, None
        if config["teacher"] is not None:
            teacher, teacher_record = ensure_teacher(job.profile, job.task, job.teacher_seed, runs_dir, device,
                                                     progress)
        # scratch students are compared with the teacher too, if it exists without training one
        compared_with = teacher if teacher is not None else finished_teacher(job.profile, job.task, job.teacher_seed,
                                                                              runs_dir, device)
        torch.manual_seed(job.seed)
        student = build_model(job.student).to(device)
        probe = torch.zeros(1, 3, job.profile.student_train.crop, job.profile.student_train.crop, device=device)
        distiller = build_distiller(job.method, student, teacher, job.options, probe).to(device)
        desc = f"{job.method} {job.student} {job.task} seed {job.seed}"
        out = _train_and_score(student, distiller, job.profile.student_train, job.profile, job.task, job.seed,
                               folder, device, progress, desc, resume, compared_with)
        distiller.close()
        record = {**base, "status": "done", "model": job.student,
                  "params": sum(p.numel() for p in student.parameters()),
                  "adapter_params": sum(p.numel() for p in distiller.method.parameters()),
                  "teacher": {"id": teacher_record["id"], "metrics": teacher_record.get("metrics")}
                  if teacher_record else None,
                  **out, "provenance": provenance(), "finished": time.time()}
    except (SkdError, RuntimeError, ValueError, FloatingPointError) as exc:
        record = {**base, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc(), "provenance": provenance(), "finished": time.time(),
                  "pid": os.getpid()}
        atomic_write_json(folder / RECORD, record)
        raise
    atomic_write_json(folder / RECORD, record)
    return record
