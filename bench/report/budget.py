"""Training-budget curves of a study whose axes vary the students' training steps
(``profile_overrides.student_train.steps``): PSNR against steps per student architecture, beside
each task's teacher trained on its own schedule. The numbers (``tables/budget.csv``); the figure is
:func:`.figures.budget_figure`."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from .stats import t_interval

STEM = "budget"
STEPS_AXIS = "profile_overrides.student_train.steps"
STEPS_COLUMN = f"axis.{STEPS_AXIS}"
COLUMNS = ("task", "student", "params_M", "steps", "psnr", "ssim", "seeds", "planned", "psnr_low", "psnr_high",
           "d_psnr_teacher")


def has_steps_axis(cells: pd.DataFrame) -> bool:
    """Whether the grid's axes vary the students' training steps (``cells``: the cell frame)."""
    return STEPS_COLUMN in cells and cells[STEPS_COLUMN].notna().any()


def series_columns(cells: pd.DataFrame) -> list[str]:
    """What makes one curve: the student and any other axis the grid varies besides the steps."""
    return ["student", *(c for c in cells if c.startswith("axis.") and c not in (STEPS_COLUMN, "axis.student"))]


def budget_frame(cells: pd.DataFrame, teachers: pd.DataFrame,
                 planned_steps: Mapping[str, int] | None = None) -> pd.DataFrame:
    """For a grid with a steps axis (:func:`has_steps_axis`): one row per task, curve
    (:func:`series_columns`, in grid order) and steps (ascending) over its cells, finished or not:
    ``params_M`` (the student's), ``steps``, ``psnr`` (dB) and ``ssim`` (means over the finished
    seeds; NaN where none finished), ``seeds`` (finished), ``planned`` (cells), ``psnr_low``/
    ``psnr_high`` (95% t interval of the mean; NaN below two seeds) and ``d_psnr_teacher`` (psnr
    minus the task's teacher's, dB; NaN without a teacher). A cell's steps are those its record
    trained, else ``planned_steps[id]`` (the manifest's resolved schedule), else the axis value."""
    # the steps each cell trained (its record), so explicit cells beside the axes (e.g. a costly
    # architecture at fewer budgets) join the curves too, and unfinished ones where they were planned
    steps = pd.Series(float("nan"), index=cells.index)
    if "training.steps" in cells:
        steps = steps.fillna(cells["training.steps"].where(cells["status"] == "done"))
    steps = steps.fillna(cells["id"].map(dict(planned_steps or {})).astype(float)).fillna(cells[STEPS_COLUMN])
    frame = cells.assign(_steps=steps)[steps.notna()]
    keys = ["task", *series_columns(cells)]
    teacher_psnr = teachers.drop_duplicates("task").set_index("task")["psnr"].astype(float)
    rows = []
    for key, curve in frame.groupby(keys, sort=False, dropna=False):
        params = curve.loc[curve["status"] == "done", "params"].astype(float).dropna()
        for n_steps, group in curve.groupby("_steps", sort=True):
            done = group[group["status"] == "done"]
            mean, low, high = t_interval(done["metrics.psnr"].astype(float).to_numpy())
            ssim = done["metrics.ssim"].astype(float).mean() if len(done) else math.nan
            rows.append({**dict(zip(keys, key, strict=True)),
                         "params_M": float(params.iloc[0]) / 1e6 if len(params) else math.nan,
                         "steps": int(n_steps), "psnr": mean, "ssim": float(ssim), "seeds": len(done),
                         "planned": len(group), "psnr_low": low, "psnr_high": high,
                         "d_psnr_teacher": mean - teacher_psnr.get(key[0], math.nan)})
    return pd.DataFrame(rows, columns=[*COLUMNS[:2], *keys[2:], *COLUMNS[2:]])


def csv_budget(frame: pd.DataFrame) -> str:
    """The numbers behind the budget figure, one row per point planned (``seeds`` 0 and empty
    scores where none finished)."""
    return frame.to_csv(index=False, float_format="%.6g")
