"""A grid run's manifest: what a report needs of it without recomputing anything (written by the
runner through :meth:`bench.store.RunStore.write_manifest`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from bench.spec.grid import Grid

from .cells import Cell, StudentJob, cell_teacher, needs_teacher


def manifest(grid: Grid, cells: Sequence[Cell], arch: dict[str, str] | None = None) -> dict[str, Any]:
    """What a report needs of a grid run, without recomputing anything: the spec, each cell's id,
    label, axes, resolved config, teacher id (None when the grid trains no teacher for it) and the
    names of its options that hold tuned values (``tuned``), how those values were tuned
    (``tuning``: provenance per method, see :mod:`bench.spec.tuned`), and the keys of the
    architecture measurements."""
    rows = [{"id": c.id, "label": c.label, "task": c.task, "seed": c.seed, "method": c.job.method,
             "student": c.job.student, "teacher_model": c.job.profile.teacher,
             "teacher_id": cell_teacher(c) if grid.train_teacher or needs_teacher(c) else None, "axes": c.axes,
             "options": c.job.options, "tuned": tuned_options(c.job),
             "throughput_size": list(c.job.profile.throughput_size), "config": c.job.config()} for c in cells]
    tuning = {c.job.method: c.job.profile.tuning[c.job.method] for c, row in zip(cells, rows, strict=True)
              if row["tuned"]}
    return {"study": grid.study, "description": grid.description, "spec_file": str(grid.path), "spec": grid.spec,
            "profile": grid.profile, "overrides": grid.overrides, "key": grid.run_key(), "tasks": grid.tasks,
            "seeds": grid.seeds, "cells": rows, "tuning": tuning, "arch": arch or {}, "written": time.time()}


def tuned_options(job: StudentJob) -> list[str]:
    """The options of ``job`` that hold its profile's tuned values (not replaced by the cell's own)."""
    tuned = job.profile.tuning.get(job.method, {}).get("options", {})
    return [name for name, value in tuned.items() if job.options.get(name) == value]
