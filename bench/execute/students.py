"""One student cell (scratch or distilled) trained, scored and recorded.
"""

from __future__ import annotations

import os
import time
import traceback
from typing import Any

import torch

from bench.spec.codeid import code_identity
from bench.store import RunStore, non_finite_metric
from skd_core.train.checkpoint import save_weights
from skd_core.train.runs import train_student

from .artefacts import save_artefacts
from .cells import StudentJob, data_settings
from .provenance import provenance
from .replay import ReplaySpec, replaying
from .tblog import log_failure, log_finish, log_start
from .teachers import ensure_teacher, finished_teacher


def run_student(job: StudentJob, store: RunStore, device: torch.device | str = "cpu", progress: bool = True,
                resume: bool = True, replay: ReplaySpec | None = None) -> dict[str, Any]:
    """Train and score one student cell; returns (and writes) its record. Any exception (not
    ``KeyboardInterrupt`` or ``SystemExit``) is recorded as a ``failed`` record with its traceback
    and re-raised. With ``replay`` (given by the runner) the teacher's blocks are recorded or
    replayed (:mod:`bench.execute.replay`; exact), and the record's ``teacher_replay`` says how often."""
    device = torch.device(device)
    cid = job.id()
    folder = store.writable().cell_dir(cid)
    config = job.config()
    base = {"id": cid, "kind": "student", "config": config, "data": job.data()}
    try:
        log_start(folder, f"student {job.method} {job.student} {job.task} seed {job.seed} (cell {cid})")
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
        save_weights(result.model, store.weights(folder))
        record = {**base, "status": "done", "model": job.student, **result.fields,
                  "code": code_identity(job.code_roots()),
                  # the teacher's scores are on the test split: a cell scored on another split omits them
                  "teacher": {"id": teacher_record["id"], "model": teacher_record.get("model"),
                              "metrics": teacher_record.get("metrics") if job.split == "test" else None}
                  if teacher_record else None,
                  **save_artefacts(store, folder, result, job.profile, job.task, job.split),
                  **({"teacher_replay": {"role": replay.role, **replayer.stats.as_dict()}} if replayer else {}),
                  "provenance": provenance(device), "finished": time.time()}
        log_finish(folder, record, result.kept)
        if bad := non_finite_metric(record):
            raise FloatingPointError(f"cell {cid}: non-finite metric {bad}")
    except Exception as exc:
        record = {**base, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc(), "provenance": provenance(device), "finished": time.time(),
                  "pid": os.getpid()}
        store.write_record(folder, record)
        log_failure(folder, record["error"])
        raise
    store.write_record(folder, record)
    return record
