"""The loss-balance table, its inert/dominant marks and figures, from hand-made histories."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.report import balance
from bench.report.tables import render_rows


def _monitor() -> pd.DataFrame:
    """Two seeds x 3 steps of one variant: pixel_l1 gradient 1.0, 'kd' 5x it, 'tiny' 1 % of it."""
    rows = []
    for seed in (0, 1):
        for step in (0, 5, 10):
            grads = {"pixel_l1": 1.0, "kd": 5.0 + seed, "tiny": 0.01}
            total = sum(grads.values())
            for term, g in grads.items():
                rows += [{"label": "m", "task": "t", "seed": seed, "step": step, "key": f"grad/{term}", "value": g},
                         {"label": "m", "task": "t", "seed": seed, "step": step, "key": f"share/{term}",
                          "value": g / total},
                         {"label": "m", "task": "t", "seed": seed, "step": step, "key": f"cos/{term}",
                          "value": 1.0 if term == "pixel_l1" else -0.5}]
            rows.append({"label": "m", "task": "t", "seed": seed, "step": step, "key": "entropy/latent/channel",
                         "value": 0.9 - 0.01 * step})
    return pd.DataFrame(rows, columns=balance.COLUMNS)


def test_balance_table_medians_flags_and_marks():
    table = balance.balance_table(_monitor()).set_index("term")
    assert table.loc["kd", "grad_ratio"] == pytest.approx(5.5)  # mean over seeds of 5 and 6
    assert table.loc["kd", "median_share"] == pytest.approx((5 / 6.01 + 6 / 7.01) / 2)
    assert table.loc["kd", "cosine"] == pytest.approx(-0.5) and table.loc["kd", "seeds"] == 2
    assert bool(table.loc["kd", "dominant"]) and not bool(table.loc["kd", "inert"])
    assert bool(table.loc["tiny", "inert"]) and not bool(table.loc["tiny", "dominant"])
    assert not table.loc["pixel_l1", ["inert", "dominant"]].any()  # the reconstruction term is never marked
    marks = balance.balance_marks(table.reset_index())
    assert marks == {("t", "m"): "dominant: kd; inert: tiny"}
    row = {"role": "student", "task": "t", "label": "m", "balance": marks[("t", "m")], "n_done": 2, "n_cells": 2,
           "psnr_mean": 30.0, "ssim_mean": 0.9, "params_M": 0.1, "macs_G": 1.0}
    assert render_rows(pd.DataFrame([row]), str)[0][1] == "m [dominant: kd; inert: tiny]"


def test_balance_and_entropy_figures_draw():
    monitor = _monitor()
    assert balance.balance_figure(monitor).axes and balance.entropy_figure(monitor).axes
    assert balance.balance_table(monitor.iloc[:0]).empty and balance.balance_caption(monitor.iloc[:0]) == ""
