"""The teacher of a (profile, task, teacher seed): from a checkpoint file, a finished run, the
teachers shipped with the repository (:mod:`bench.execute.shipped`), or trained now -- once, under a
lock, whichever runner gets there first.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.spec.plugins import load_plugins
from bench.spec.profiles import Profile
from bench.store import CorruptRecordError, RunStore, non_finite_metric
from skd_core.data import get_task, load_pairs
from skd_core.errors import SkdError
from skd_core.models import build_model, load_checkpoint
from skd_core.train.checkpoint import save_weights
from skd_core.train.evaluate import evaluate
from skd_core.train.runs import DataSettings, RunResult, train_teacher

from .artefacts import save_artefacts
from .cells import StudentJob, data_settings, fingerprints, teacher_config, teacher_id
from .provenance import provenance
from .shipped import import_shipped
from .tblog import log_failure, log_finish, log_start


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
    very teacher (:mod:`bench.execute.shipped`), or trained now (under a lock, so concurrent runners train it
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
    load_checkpoint(model, profile.teacher_checkpoint or store.weights(folder))
    return model.to(device).eval(), record


def _run_teacher(profile: Profile, task: str, seed: int, store: RunStore, tid: str, cfg: dict[str, Any],
                 device: torch.device, progress: bool, resume: bool, keep_images: Sequence[str]) -> dict[str, Any]:
    folder = store.writable().teacher_dir(tid)
    log_start(folder, f"teacher {profile.teacher} {task} seed {seed} (teacher {tid})")
    try:
        return _train_and_record(profile, task, seed, store, tid, cfg, device, progress, resume, keep_images, folder)
    except Exception as exc:
        log_failure(folder, f"{type(exc).__name__}: {exc}")
        raise


def _train_and_record(profile: Profile, task: str, seed: int, store: RunStore, tid: str, cfg: dict[str, Any],
                      device: torch.device, progress: bool, resume: bool, keep_images: Sequence[str],
                      folder: Path) -> dict[str, Any]:
    data = data_settings(profile, keep_images)
    if profile.teacher_checkpoint:  # scored once, so reports have its row and its restorations
        model = load_checkpoint(build_model(profile.teacher), profile.teacher_checkpoint).to(device).eval()
        result = _score_only(model, data, task, device)
        result.fields["source"] = "checkpoint"
    else:
        result = train_teacher(profile.teacher, profile.teacher_train_for(task), data, task, seed, folder, device,
                               progress, resume)
        save_weights(result.model, store.weights(folder))
    record = {"id": tid, "kind": "teacher", "status": "done", "config": cfg, "model": profile.teacher,
              "code": cfg.get("code", "checkpoint"),
              "data": fingerprints(profile, task), **result.fields,
              **save_artefacts(store, folder, result, profile, task), "provenance": provenance(device),
              "finished": time.time()}
    log_finish(folder, record, result.kept)
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


def prepare_teacher(job: StudentJob, root: Path, device: str, threads: int, progress: bool) -> str:
    """Train (or find) a cell's teacher: ``done``, or ``failed: <error>`` with the traceback after a
    newline (the runner fails the cells that need it)."""
    try:
        if threads:
            torch.set_num_threads(threads)
        load_plugins(job.plugins)
        ensure_teacher(job.profile, job.task, job.teacher_seed, RunStore(root), device, progress,
                       keep_images=job.keep_images)
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    return "done"
