"""A grid run's records as pandas DataFrames: one row per cell (missing, failed and corrupt cells
included), the teachers the cells used, and the training histories (losses, teacher-student
similarity) in long form.

Everything comes from the run store: the grid's manifest (written by the runner: cells, ids,
labels, resolved configs, architecture keys) and the records it points to. Nothing is recomputed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.spec.grid import Grid, QualitativeOptions
from bench.store import RunStore
from skd_core.errors import SkdError

#: record fields left out of the flat rows (multi-line text; the record file keeps it)
SKIPPED_FIELDS = ("traceback",)
#: history metrics the training-curve figure plots, in panel order
CURVE_METRICS = ("loss", "pixel_l1", "val_psnr")
TEACHER_COLUMNS = ("task", "id", "model", "psnr", "ssim", "params", "steps")
#: history keys of the teacher-student similarity probe: ``sim/<tap>`` (linear CKA, see bench.execute.cells)
SIMILARITY_PREFIX = "sim/"
#: flat record column of the machine identity's label (``bench.execute.provenance.identity_key``)
IDENTITY_COLUMN = "provenance.identity.label"
#: the identity group of records written before records carried one
NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class ManifestCell:
    """A cell as the runner recorded it in the grid's manifest; ``teacher_id``: the teacher the grid
    trains for it (None when none, or in manifests written before the runner recorded it);
    ``tuned``: its options that hold the profile's tuned values."""

    id: str
    label: str
    task: str
    seed: int
    method: str
    student: str
    teacher_model: str
    axes: dict[str, Any]
    options: dict[str, Any]
    throughput_size: tuple[int, int]
    config: dict[str, Any]
    teacher_id: str | None = None
    tuned: tuple[str, ...] = ()


@dataclass(frozen=True)
class GridRun:
    """One run of a grid in a run store, read from its manifest; ``tuning``: how the tuned options
    its cells used were chosen, per method (empty: none; see ``bench.spec.tuned``)."""

    study: str
    description: str
    path: Path
    profile: str
    tasks: list[str]
    seeds: list[int]
    spec: dict[str, Any]
    cells: list[ManifestCell]
    arch: dict[str, str]
    qualitative: QualitativeOptions
    store: RunStore
    tuning: dict[str, dict[str, Any]] = field(default_factory=dict)
    seeds_why: str = ""  # the spec's report.seeds

    def labels(self) -> list[str]:
        return list(dict.fromkeys(c.label for c in self.cells))


def load_run(grid: Grid, runs_dir: Path) -> GridRun:
    """The run of ``grid`` (its spec, profile and overrides) recorded in the store at ``runs_dir``;
    an :class:`SkdError` saying how to run it when there is none."""
    store = RunStore(runs_dir)
    data = store.read_manifest(grid.study, grid.run_key())
    if data is None:
        others = ", ".join(p.stem for p in store.manifests(grid.study))
        raise SkdError(f"grid {grid.study!r} ({grid.path}) has not been run under {runs_dir} with profile "
                       f"{grid.profile!r} and these overrides; run it first: skd-bench run {grid.path} --profile "
                       f"{grid.profile} --runs-dir {runs_dir}" + (f" (runs of this study there: {others})" if others
                                                                   else ""))
    cells = [ManifestCell(c["id"], c["label"], c["task"], c["seed"], c["method"], c["student"], c["teacher_model"],
                          c["axes"], c["options"], tuple(c["throughput_size"]), c["config"], c.get("teacher_id"),
                          tuple(c.get("tuned", ())))
             for c in data["cells"]]
    return GridRun(grid.study, grid.description, grid.path, grid.profile, grid.tasks, grid.seeds, grid.spec, cells,
                   data.get("arch", {}), grid.qualitative, store, data.get("tuning", {}), grid.seeds_why)


@dataclass(frozen=True)
class CellResult:
    """A grid cell, its status (``done``, ``failed``, ``running``, ``corrupt`` or ``pending``), its
    record and the problem when failed or corrupt."""

    cell: ManifestCell
    status: str
    record: dict[str, Any] | None
    problem: str | None = None


def load_cells(run: GridRun) -> list[CellResult]:
    """Every cell of ``run`` (grid order) with its record."""
    return [CellResult(c, *run.store.status(run.store.cell_dir(c.id))) for c in run.cells]


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
    then every scalar record field (``metrics.psnr`` in dB, ``params``, ``provenance.git.commit`` ...)
    and ``metrics.n_images``, the number of test images scored (the length of ``metrics.per_image``)."""
    rows = []
    for r in results:
        head = {"id": r.cell.id, "label": r.cell.label, "task": r.cell.task, "seed": r.cell.seed,
                "method": r.cell.method, "student": r.cell.student, "teacher_model": r.cell.teacher_model,
                "status": r.status, "problem": r.problem, **{f"axis.{k}": v for k, v in r.cell.axes.items()}}
        flat = flatten(r.record) if r.record is not None else {}
        per_image = ((r.record or {}).get("metrics") or {}).get("per_image")
        if isinstance(per_image, list):
            flat["metrics.n_images"] = len(per_image)
        rows.append({**head, **{k: v for k, v in flat.items() if k not in head}})
    return pd.DataFrame(rows)


def teacher_frame(results: Sequence[CellResult], store: RunStore) -> pd.DataFrame:
    """One row per teacher of the grid: those the finished cells used, then those the manifest names
    (a grid with ``train_teacher``) whose record is done: task, id, model, psnr (dB), ssim, params,
    steps (trained; NaN for a checkpoint) and its provenance; from the teacher's record, else the
    scores the cells copied."""
    rows: dict[str, dict[str, Any]] = {}
    used = [(r, (r.record or {}).get("teacher") if r.status == "done" else None) for r in results]
    named = [(r, {"id": r.cell.teacher_id}) for r in results if r.cell.teacher_id]
    for r, teacher in [*used, *named]:
        if not teacher or teacher["id"] in rows:
            continue
        record = teacher_record(store, teacher["id"]) or {}
        metrics = record.get("metrics") or teacher.get("metrics")
        if not metrics:  # a named teacher not trained (yet), or failed
            continue
        rows[teacher["id"]] = {"task": r.cell.task, "id": teacher["id"],
                               "model": record.get("model", r.cell.teacher_model),
                               "psnr": metrics.get("psnr"), "ssim": metrics.get("ssim"),
                               "params": record.get("params"), "steps": (record.get("training") or {}).get("steps"),
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


def teacher_record(store: RunStore, teacher_id: str) -> dict[str, Any] | None:
    """A teacher's record, or None when it is missing or unreadable."""
    try:
        return store.read_record(store.teacher_dir(teacher_id))
    except SkdError:
        return None


def record_identity(record: Mapping[str, Any] | None) -> str:
    """The machine-identity label a record was made on, or :data:`NOT_RECORDED`."""
    label = (((record or {}).get("provenance") or {}).get("identity") or {}).get("label")
    return label if isinstance(label, str) and label else NOT_RECORDED


def identity_groups(labels: Iterable[str]) -> dict[str, int]:
    """Identity label -> number of records, most records first (:data:`NOT_RECORDED` last)."""
    counts = Counter(labels)
    return dict(sorted(counts.items(), key=lambda kv: (kv[0] == NOT_RECORDED, -kv[1])))


def cell_identities(cells: pd.DataFrame) -> dict[str, int]:
    """:func:`identity_groups` of the finished cells of a cell frame (:func:`cell_frame`)."""
    done = cells[cells["status"] == "done"]
    labels = done[IDENTITY_COLUMN] if IDENTITY_COLUMN in done else pd.Series(index=done.index, dtype=object)
    return identity_groups(label if isinstance(label, str) and label else NOT_RECORDED for label in labels)


def identity_line(groups: Mapping[str, int]) -> str:
    """One sentence on the machine identities of a study's records (``groups``: :func:`identity_groups`):
    mixed when two recorded identities or more occur (records are bitwise reproducible only within
    one); empty without records."""
    if not groups:
        return ""
    recorded = {k: n for k, n in groups.items() if k != NOT_RECORDED}
    missing = groups.get(NOT_RECORDED, 0)
    if not recorded:
        return f"Machine identity: {NOT_RECORDED} (the records predate it)."
    if len(recorded) == 1:
        (label, n), = recorded.items()
        rest = f"; {NOT_RECORDED} for {_cells(missing)} (older records)" if missing else ""
        return f"Machine identity: {label} ({'all ' * (not missing and n > 1)}{_cells(n)}){rest}."
    listed = "; ".join(f"{label} -> {_cells(n)}" for label, n in groups.items())
    return (f"Mixed machine identities ({len(recorded)}; records are bitwise reproducible only within one): "
            f"{listed}.")


def _cells(n: int) -> str:
    return f"{n} cell{'s' * (n != 1)}"
