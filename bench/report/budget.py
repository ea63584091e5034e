"""Training-budget curves of a study whose axes vary the students' training steps
(``profile_overrides.student_train.steps``): PSNR against steps per student architecture, beside
each task's teacher trained on its own schedule. The numbers (``tables/budget.csv``); the figure is
:func:`.figures.budget_figure`."""

from __future__ import annotations

import math

import pandas as pd

from .stats import t_interval

STEM = "budget"
STEPS_AXIS = "profile_overrides.student_train.steps"
STEPS_COLUMN = f"axis.{STEPS_AXIS}"
COLUMNS = ("task", "student", "params_M", "steps", "psnr", "ssim", "seeds", "psnr_low", "psnr_high", "d_psnr_teacher")


def has_steps_axis(cells: pd.DataFrame) -> bool:
    """Whether the grid's axes vary the students' training steps (``cells``: the cell frame)."""
    return STEPS_COLUMN in cells and cells[STEPS_COLUMN].notna().any()


def series_columns(cells: pd.DataFrame) -> list[str]:
    """What makes one curve: the student and any other axis the grid varies besides the steps."""
    return ["student", *(c for c in cells if c.startswith("axis.") and c not in (STEPS_COLUMN, "axis.student"))]


def budget_frame(cells: pd.DataFrame, teachers: pd.DataFrame) -> pd.DataFrame:
    """For a grid with a steps axis (:func:`has_steps_axis`): one row per task, curve
    (:func:`series_columns`, in grid order) and steps trained (ascending) over its finished cells:
    ``params_M`` (the student's), ``steps``, ``psnr`` (dB) and ``ssim`` (means over seeds),
    ``seeds`` (finished), ``psnr_low``/``psnr_high`` (95% t interval of the mean; NaN below two
    seeds) and ``d_psnr_teacher`` (psnr minus the task's teacher's, dB; NaN without a teacher)."""
    # the steps each cell trained (its record), so explicit cells beside the axes (e.g. a costly
    # architecture at fewer budgets) join the curves too
    steps_column = "training.steps" if "training.steps" in cells else STEPS_COLUMN
    done = cells[(cells["status"] == "done") & cells[steps_column].notna()]
    keys = ["task", *series_columns(cells)]
    teacher_psnr = teachers.drop_duplicates("task").set_index("task")["psnr"].astype(float)
    rows = []
    for key, curve in done.groupby(keys, sort=False, dropna=False):
        for steps, group in curve.groupby(steps_column, sort=True):
            mean, low, high = t_interval(group["metrics.psnr"].astype(float).to_numpy())
            rows.append({**dict(zip(keys, key, strict=True)), "params_M": float(group["params"].iloc[0]) / 1e6,
                         "steps": int(steps), "psnr": mean, "ssim": float(group["metrics.ssim"].astype(float).mean()),
                         "seeds": len(group), "psnr_low": low, "psnr_high": high,
                         "d_psnr_teacher": mean - teacher_psnr.get(key[0], math.nan)})
    return pd.DataFrame(rows, columns=[*COLUMNS[:2], *keys[2:], *COLUMNS[2:]])


def csv_budget(frame: pd.DataFrame) -> str:
    """The numbers behind the budget figure, one row per point."""
    return frame.to_csv(index=False, float_format="%.6g")
