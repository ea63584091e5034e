"""Statistics over seeds: mean, sample standard deviation, Student-t 95% intervals, paired
differences to the reference (scratch) student with their minimum detectable effect and
inconclusive marks, best-per-column flags and the Pareto front."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from bench.spec.grid import REFERENCE_LABEL

from .power import minimum_detectable_effect

LEVEL = 0.95
#: summary column -> (the better direction, decimals compared: the printed precision, so that
#: values printed alike tie)
BEST = {"psnr_mean": ("max", 2), "ssim_mean": ("max", 4), "d_psnr": ("max", 2), "d_ssim": ("max", 4),
        "params_M": ("min", 6), "macs_G": ("min", 6)}
#: metric columns of the cell frame -> summary prefix
METRICS = {"metrics.psnr": "psnr", "metrics.ssim": "ssim"}


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """``(mean, low, high)``: two-sided Student-t interval of the mean (sample std, n - 1 degrees of
    freedom); the bounds are NaN below two values."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def paired_difference(values: pd.Series, reference: pd.Series, level: float = LEVEL) -> dict[str, float]:
    """Mean of ``values - reference`` over their common index (the seeds) with its paired t interval
    and the sample SD (ddof=1) of the differences: ``{"mean", "low", "high", "sd", "n"}`` (``n``
    pairs; ``sd`` NaN below two)."""
    d = (values - reference).dropna()
    mean, low, high = t_interval(d.to_numpy(), level)
    sd = float(d.std(ddof=1)) if d.size > 1 else math.nan
    return {"mean": mean, "low": low, "high": high, "sd": sd, "n": int(d.size)}


def spans_zero(low: float, high: float) -> bool | None:
    """Whether the interval ``[low, high]`` has zero strictly inside (``low < 0 < high``): the
    difference is *inconclusive*; None without an interval."""
    return None if math.isnan(low) or math.isnan(high) else bool(low < 0 < high)


def summarise(cells: pd.DataFrame, reference: str = REFERENCE_LABEL) -> pd.DataFrame:
    """One row per (task, label) in grid order from a cell frame (:func:`.records.cell_frame`):
    ``n_cells``, ``n_done``, ``<m>_mean``, ``<m>_std`` (sample std), ``<m>_low``/``<m>_high`` (95% t
    interval of the mean), ``d_<m>``, ``d_<m>_low``/``_high``, ``d_<m>_sd`` (sample SD of the per-seed
    differences), ``mde_<m>`` (:func:`.power.minimum_detectable_effect` at ``n_pairs``),
    ``inconclusive_<m>`` (interval spans zero; NA without one) and ``n_pairs`` (paired difference to
    ``reference`` by seed; NaN on the reference row) for m in psnr (dB), ssim; ``n_images`` (test
    images per cell), ``params_M`` and ``adapter_params`` of the student (adapters are training
    overhead, not in ``params_M``)."""
    done = cells[cells["status"] == "done"]
    rows = []
    for (task, label), group in cells.groupby(["task", "label"], sort=False):
        ok = done[(done["task"] == task) & (done["label"] == label)]
        ref = done[(done["task"] == task) & (done["label"] == reference)]
        row = {"task": task, "label": label, "model": group["student"].iloc[0], "n_cells": len(group),
               "n_done": len(ok), "n_images": _first(ok, "metrics.n_images"), "params_M": _first(ok, "params") / 1e6,
               "adapter_params": _first(ok, "adapter_params")}
        for column, name in METRICS.items():
            values = ok[column].astype(float) if column in ok else pd.Series(dtype=float)
            mean, low, high = t_interval(values.to_numpy())
            row.update({f"{name}_mean": mean, f"{name}_std": values.std(ddof=1) if len(values) > 1 else math.nan,
                        f"{name}_low": low, f"{name}_high": high})
            if label == reference or column not in ok:
                diff = {"mean": math.nan, "low": math.nan, "high": math.nan, "sd": math.nan, "n": 0}
            else:
                diff = paired_difference(ok.set_index("seed")[column].astype(float),
                                         ref.set_index("seed")[column].astype(float))
            row.update({f"d_{name}": diff["mean"], f"d_{name}_low": diff["low"], f"d_{name}_high": diff["high"],
                        f"d_{name}_sd": diff["sd"], f"mde_{name}": minimum_detectable_effect(diff["n"], diff["sd"]),
                        f"inconclusive_{name}": spans_zero(diff["low"], diff["high"])})
            row["n_pairs"] = diff["n"]
        rows.append(row)
    frame = pd.DataFrame(rows)
    flags = [f"inconclusive_{name}" for name in METRICS.values()]
    frame[flags] = frame[flags].astype("boolean")
    return frame


def _first(frame: pd.DataFrame, column: str) -> float:
    return float(frame[column].iloc[0]) if column in frame and len(frame) else math.nan


def best_flags(summary: pd.DataFrame, best: Mapping[str, tuple[str, int]] = BEST, by: str = "task") -> pd.DataFrame:
    """Boolean ``best_<column>`` for each column of ``best`` present: the best value rounded to the
    given decimals (ties included) within each ``by`` group; no flag where all rounded values are
    equal (nothing to choose)."""
    out = pd.DataFrame(index=summary.index)
    for column, (direction, decimals) in best.items():
        if column not in summary:
            continue
        flags = pd.Series(False, index=summary.index)
        for _, group in summary.groupby(by, sort=False):
            values = group[column].astype(float).dropna().round(decimals)
            if values.nunique() < 2:
                continue
            flags[values.index[values == (values.max() if direction == "max" else values.min())]] = True
        out[f"best_{column}"] = flags
    return out


def pareto_front(cost: Sequence[float], value: Sequence[float]) -> np.ndarray:
    """Mask of the points no other point dominates (lower or equal cost and higher or equal value,
    one of them strictly); NaN points are never on the front."""
    c, v = np.asarray(cost, dtype=float), np.asarray(value, dtype=float)
    ok = ~(np.isnan(c) | np.isnan(v))
    mask = np.zeros(c.size, dtype=bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (c <= c[i]) & (v >= v[i]) & ((c < c[i]) | (v > v[i]))
        mask[i] = not dominated.any()
    return mask
