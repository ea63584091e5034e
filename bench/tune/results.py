"""What a search leaves besides its storage: the trial history (``results/tuning/<name>_trials.csv``)
and the tuned-options entries with their provenance (:mod:`.tuned`).

History columns: ``method``, ``trial`` (the study's trial number), ``state`` (COMPLETE, FAIL,
RUNNING), ``value_dB`` (validation PSNR of a complete trial), ``counted`` (one of the method's first
``trials`` complete trials: the equal budget), ``params`` (JSON), ``cell_id`` (the trial's cell in
the run store), ``error`` (why a trial failed; empty for one a kill interrupted).
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from pathlib import Path
from typing import Any

from skd_core.atomic import atomic_write_text

from .search import SearchResult, TrialRow
from .spec import TuningSpec

HISTORY_COLUMNS = ("method", "trial", "state", "value_dB", "counted", "params", "cell_id", "error")


def history_path(spec: TuningSpec, out: Path) -> Path:
    return Path(out) / "tuning" / f"{spec.name}_trials.csv"


def write_history(path: Path, rows: list[TrialRow]) -> Path:
    """The trial history as CSV (module doc), written atomically."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for r in rows:
        writer.writerow([r.method, r.number, r.state, "" if r.value is None else f"{r.value:.6f}", r.counted,
                         json.dumps(r.params, sort_keys=True), r.cell or "", r.error or ""])
    return atomic_write_text(path, text.getvalue())


def tuned_entries(spec: TuningSpec, result: SearchResult,
                  date: str | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``(options, tuning)`` for :func:`.tuned.write_tuned`: each method's best counted values and how
    they were found (``date``: ISO date, default today in UTC)."""
    date = date or datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    train = spec.profile.student_train
    options, tuning = {}, {}
    for method, found in result.results.items():
        options[method] = dict(found.best.params)
        tuning[method] = {
            "spec": spec.path.as_posix(), "name": spec.name, "sampler": "TPE", "sampler_seed": spec.sampler_seed,
            "startup_trials": spec.startup_trials, "trials": spec.trials, "metric": spec.metric,
            "split": spec.split, "val_images": result.val_images, "task": spec.task, "seed": spec.seed,
            "teacher_seed": spec.teacher_seed, "budget": {"steps": train.steps, "batch": train.batch,
                                                          "crop": train.crop},
            "best_trial": found.best.number, "value_dB": round(float(found.best.value), 4),
            "study": f"{result.storage.name}/{found.study}", "date": date}
    return options, tuning
