"""A grid's records as pandas DataFrames: one row per cell (missing and failed cells included),
the teachers the cells used, and the training histories (losses, teacher-student similarity) in
long form."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..grid import Cell, Grid
from ..jobs import read_record
from ..runner import cell_status

#: record fields left out of the flat rows (multi-line text; the record file keeps it)
SKIPPED_FIELDS = ("traceback",)
#: history metrics the training-curve figure plots, in panel order
CURVE_METRICS = ("loss", "pixel_l1", "val_psnr")
TEACHER_COLUMNS = ("task", "id", "model", "psnr", "ssim", "params")
#: history keys of the teacher-student similarity probe: ``sim/<tap>`` (linear CKA, see bench.jobs)
SIMILARITY_PREFIX = "sim/"


@dataclass(frozen=True)
class CellResult:
    """A grid cell, its status (``done``, ``failed``, ``running`` or ``pending``) and its record."""

    cell: Cell
    status: str
    record: dict[str, Any] | None


def load_cells(grid: Grid, runs_dir: Path) -> list[CellResult]:
    """Every cell of ``grid`` (the expanded spec, in grid order) with its record under ``runs_dir``."""
    return [CellResult(c, *cell_status(runs_dir, c.id)) for c in grid.cells]


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalar fields of a nested record under dotted keys (``metrics.psnr``); lists are left out."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif not isinstance(value, (list, tuple)) and key not in SKIPPED_FIELDS:
            out[name] = value
    return out


def cell_frame(results: Sequence[CellResult]) -> pd.DataFrame:
    """One row per cell: the grid's columns (id, label, task, seed, method, student, status, axes)
    then every scalar record field (``metrics.psnr`` in dB, ``params``, ``provenance.git.commit`` ...)."""
    rows = []
    for r in results:
        head = {"id": r.cell.id, "label": r.cell.label, "task": r.cell.task, "seed": r.cell.seed,
                "method": r.cell.job.method, "student": r.cell.job.student, "teacher_model": r.cell.job.profile.teacher,
                "status": r.status, **{f"axis.{k}": v for k, v in r.cell.axes.items()}}
        flat = flatten(r.record) if r.record is not None else {}
        rows.append({**head, **{k: v for k, v in flat.items() if k not in head}})
    return pd.DataFrame(rows)


def teacher_frame(results: Sequence[CellResult], runs_dir: Path) -> pd.DataFrame:
    """One row per teacher the finished cells used: task, id, model, psnr (dB), ssim, params and its
    provenance; from ``teachers/<id>/record.json``, else (a checkpoint teacher) the scores the cells copied."""
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        used = (r.record or {}).get("teacher") if r.status == "done" else None
        if not used or used["id"] in rows:
            continue
        record = read_record(runs_dir / "teachers" / used["id"]) or {}
        metrics = record.get("metrics") or used.get("metrics") or {}
        rows[used["id"]] = {"task": r.cell.task, "id": used["id"],
                            "model": record.get("model", r.cell.job.profile.teacher),
                            "psnr": metrics.get("psnr"), "ssim": metrics.get("ssim"), "params": record.get("params"),
                            **{k: v for k, v in flatten(record).items() if k.startswith("provenance.")}}
    return pd.DataFrame(list(rows.values())) if rows else pd.DataFrame(columns=TEACHER_COLUMNS)


def history_frame(results: Sequence[CellResult]) -> pd.DataFrame:
    """Training histories of finished cells in long form: label, task, seed, step, metric, value
    (only :data:`CURVE_METRICS`; losses are per batch, ``val_psnr`` in dB)."""
    rows = [{"label": r.cell.label, "task": r.cell.task, "seed": r.cell.seed, "step": entry["step"],
             "metric": metric, "value": entry[metric]}
            for r in results if r.status == "done"
            for entry in (r.record.get("training") or {}).get("history", [])
            for metric in CURVE_METRICS if entry.get(metric) is not None]
    return pd.DataFrame(rows, columns=["label", "task", "seed", "step", "metric", "value"])


def similarity_frame(results: Sequence[CellResult]) -> pd.DataFrame:
    """Teacher-student feature similarity logged while finished cells trained, in long form: label,
    task, seed, step, tap, value (linear CKA in [0, 1]; history keys ``sim/<tap>``)."""
    rows = [{"label": r.cell.label, "task": r.cell.task, "seed": r.cell.seed, "step": entry["step"],
             "tap": key[len(SIMILARITY_PREFIX):], "value": value}
            for r in results if r.status == "done"
            for entry in (r.record.get("training") or {}).get("history", [])
            for key, value in entry.items() if key.startswith(SIMILARITY_PREFIX)]
    return pd.DataFrame(rows, columns=["label", "task", "seed", "step", "tap", "value"])
