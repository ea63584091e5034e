"""The figures of a study (seaborn on matplotlib's object API: no pyplot state, rendered by Agg
for PNG), each saved as PNG and SVG: ablation intervals, PSNR vs cost with the Pareto front,
training curves, teacher-student feature similarity over training, realised speed-up vs MAC
ratio, and PSNR vs training steps (a study varying the students' steps). Figures drawn from model
weights (restorations, error and attention maps) are in :mod:`bench.report.qualitative`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench.spec.grid import REFERENCE_LABEL
from skd_core.atomic import atomic_write

from .budget import COLUMNS as BUDGET_COLUMNS
from .records import CURVE_METRICS
from .stats import LEVEL, pareto_front

FORMATS = ("png", "svg")
DPI = 150
STYLE = "whitegrid"
CURVE_TITLES = {"loss": "training loss (total)", "pixel_l1": "pixel L1 to ground truth",
                "val_psnr": "validation PSNR (dB)"}


#: figures of images (restored outputs, error and attention maps): PNG only, since an SVG would
#: only wrap the same pixels at about twice the size
RASTER_PREFIXES = ("qualitative", "error", "attention")


def figure_formats(stem: Path) -> tuple[str, ...]:
    """``("png",)`` for an image figure (:data:`RASTER_PREFIXES`), else :data:`FORMATS`."""
    return ("png",) if stem.name.startswith(RASTER_PREFIXES) else FORMATS


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and (plots, not images) ``stem.svg`` atomically, without timestamps."""
    formats = figure_formats(stem)
    paths = [stem.with_suffix(f".{fmt}") for fmt in formats]
    for fmt in FORMATS:
        if fmt not in formats:
            stem.with_suffix(f".{fmt}").unlink(missing_ok=True)
    for path, fmt in zip(paths, formats, strict=True):
        metadata = {"Date": None} if fmt == "svg" else {}
        atomic_write(path, lambda p, fmt=fmt, metadata=metadata: fig.savefig(p, format=fmt, dpi=DPI,
                                                                             metadata=metadata, bbox_inches="tight"))
    return paths


def ablation_figure(cells: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Per task: PSNR per variant (seeds as dots, mean with its 95% t interval) and the paired
    difference to the scratch student with its 95% interval."""
    done = cells[cells["status"] == "done"].assign(psnr=lambda f: f["metrics.psnr"].astype(float))
    tasks = list(summary["task"].unique())
    labels = list(summary["label"].unique())
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(10, 0.45 * len(labels) * len(tasks) + 1.6), layout="constrained")
        axes = fig.subplots(len(tasks), 2, squeeze=False)
        for (ax_psnr, ax_diff), task in zip(axes, tasks, strict=True):
            rows = summary[summary["task"] == task].set_index("label").reindex(labels)
            y = np.arange(len(labels))
            sns.stripplot(data=done[done["task"] == task], x="psnr", y="label", order=labels, ax=ax_psnr,
                          color="0.6", size=4, jitter=0.15)
            _intervals(ax_psnr, rows["psnr_mean"], rows["psnr_low"], rows["psnr_high"], y)
            ax_psnr.set(xlabel="PSNR (dB)", ylabel="", title=f"{task}: PSNR per seed, mean ± {LEVEL:.0%} CI")
            sns.barplot(x=rows["d_psnr"].fillna(0).to_numpy(), y=labels, order=labels, ax=ax_diff, color="C0")
            _intervals(ax_diff, rows["d_psnr"], rows["d_psnr_low"], rows["d_psnr_high"], y, marker="")
            ax_diff.axvline(0, color="0.3", lw=0.8)
            ax_diff.set(xlabel=f"Δ PSNR vs {REFERENCE_LABEL} (dB)", ylabel="",
                        title=f"paired difference, {LEVEL:.0%} CI")
    return fig


def _intervals(ax: Axes, mean: pd.Series, low: pd.Series, high: pd.Series, y: np.ndarray, marker: str = "o") -> None:
    ok = mean.notna().to_numpy()
    err = np.vstack([(mean - low).to_numpy(), (high - mean).to_numpy()])[:, ok]
    ax.errorbar(mean.to_numpy()[ok], y[ok], xerr=np.nan_to_num(err), fmt=marker or "none", color="k", capsize=3,
                markersize=5)


def pareto_figure(table: pd.DataFrame) -> Figure:
    """PSNR (mean over seeds) vs MACs (G) and vs params (M) per variant, the teacher as a star, and
    the Pareto front (lower cost, higher PSNR) over all of them, per task as line style."""
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(11, 4.5), layout="constrained")
        axes = fig.subplots(1, 2)
        for ax, cost, name in zip(axes, ("macs_G", "params_M"), ("MACs (G)", "params (M)"), strict=True):
            data = table.dropna(subset=[cost, "psnr_mean"])
            sns.scatterplot(data=data[data["role"] == "student"], x=cost, y="psnr_mean", hue="label",
                            style="task" if data["task"].nunique() > 1 else None,
                            s=60, ax=ax, legend="auto" if ax is axes[-1] else False)
            teacher = data[data["role"] == "teacher"]
            ax.scatter(teacher[cost], teacher["psnr_mean"], marker="*", s=220, color="gold", edgecolor="k",
                       zorder=3, label="teacher")
            for _, row in teacher.iterrows():
                ax.annotate(row["label"], (row[cost], row["psnr_mean"]), textcoords="offset points", xytext=(6, -10),
                            fontsize=8)
            for task, group in data.groupby("task", sort=False):
                front = group[pareto_front(group[cost], group["psnr_mean"])].sort_values(cost)
                ax.plot(front[cost], front["psnr_mean"], drawstyle="steps-post", color="0.3", lw=1, ls="--",
                        label=f"Pareto front ({task})")
            if len(data) and data[cost].max() > 10 * data[cost].min() > 0:
                ax.set_xscale("log")
            ax.set(xlabel=name, ylabel="PSNR (dB), mean over seeds", title=f"PSNR vs {name}")
        handles, labels = axes[-1].get_legend_handles_labels()
        axes[-1].legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


def training_figure(history: pd.DataFrame) -> Figure:
    """Per task: loss, pixel L1 and validation PSNR (those recorded) vs step per variant, mean over
    seeds with a ± 1 standard deviation band."""
    tasks = list(history["task"].unique())
    metrics = [m for m in CURVE_METRICS if (history["metric"] == m).any()]
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(4.2 * len(metrics) + 2, 3.4 * len(tasks)), layout="constrained")
        axes = fig.subplots(len(tasks), len(metrics), squeeze=False)
        for row, task in zip(axes, tasks, strict=True):
            for ax, metric in zip(row, metrics, strict=True):
                data = history[(history["task"] == task) & (history["metric"] == metric)]
                sns.lineplot(data=data, x="step", y="value", hue="label", errorbar="sd", ax=ax,
                             legend="auto" if ax is axes[0][-1] else False)
                ax.set(xlabel="step", ylabel=CURVE_TITLES[metric], title=f"{task}: {CURVE_TITLES[metric]}")
                if metric != "val_psnr" and (data["value"] > 0).all() and len(data):
                    ax.set_yscale("log")
        legend = axes[0][-1].get_legend()
        if legend is not None:
            legend.set_bbox_to_anchor((1.02, 0.5))
            legend.set_loc("center left")
    return fig


def similarity_figure(similarity: pd.DataFrame) -> Figure:
    """Per task (a row) and tap (a column): linear CKA between student and teacher features vs
    training step per variant, mean over seeds with a ± 1 standard deviation band."""
    tasks = list(similarity["task"].unique())
    taps = list(similarity["tap"].unique())  # in the order the probe logs them: the forward order
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(2.8 * len(taps) + 2, 2.8 * len(tasks) + 0.4), layout="constrained")
        axes = fig.subplots(len(tasks), len(taps), squeeze=False, sharey=True)
        for row, task in zip(axes, tasks, strict=True):
            for ax, tap in zip(row, taps, strict=True):
                data = similarity[(similarity["task"] == task) & (similarity["tap"] == tap)]
                sns.lineplot(data=data, x="step", y="value", hue="label", errorbar="sd", ax=ax,
                             legend="auto" if ax is axes[0][-1] else False)
                ax.set(xlabel="step", ylabel="linear CKA (student, teacher)", title=f"{task}: {tap}", ylim=(0, 1.02))
        legend = axes[0][-1].get_legend()
        if legend is not None:
            legend.set_bbox_to_anchor((1.02, 0.5))
            legend.set_loc("center left")
        fig.suptitle("Teacher-student feature similarity during training (linear CKA over positions x channels, "
                     "fixed probe batch)", fontsize=10)
    return fig


def speedup_figure(speed: pd.DataFrame) -> Figure:
    """Realised speed-up (teacher ms per image / student ms per image) vs MAC ratio (teacher MACs /
    student MACs) per student model, with the y = x line (speed-up exactly as MACs promise)."""
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(5.5, 4.5), layout="constrained")
        ax = fig.subplots()
        sns.scatterplot(data=speed, x="mac_ratio", y="speedup", hue="student", s=70, ax=ax)
        for _, row in speed.iterrows():
            ax.annotate(row["student"], (row["mac_ratio"], row["speedup"]), textcoords="offset points",
                        xytext=(6, 4), fontsize=8)
        top = float(max(speed["mac_ratio"].max(), speed["speedup"].max())) * 1.15
        ax.plot([0, top], [0, top], color="0.4", ls="--", lw=1, label="y = x (speed-up = MAC ratio)")
        ax.set(xlim=(0, top), ylim=(0, top), xlabel="MAC ratio (teacher / student)",
               ylabel="realised speed-up (teacher / student time)",
               title=f"speed-up vs MAC ratio ({speed['device'].iloc[0]})")
        ax.legend(fontsize=8)
    return fig


def budget_figure(budget: pd.DataFrame, teachers: pd.DataFrame) -> Figure:
    """Per task: PSNR (dB, mean over seeds; 95% t band from two seeds) against the students'
    training steps (log2 axis) per student architecture (legend: params in M) from
    :func:`.budget.budget_frame`, and the task's teacher, trained on its own schedule, as a dashed
    horizontal line."""
    tasks = list(dict.fromkeys(budget["task"]))
    curves = ["student", *(c for c in budget if c not in BUDGET_COLUMNS)]  # what tells the curves apart
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(6.5 * len(tasks), 4.5), layout="constrained")
        for ax, task in zip(fig.subplots(1, len(tasks), squeeze=False)[0], tasks, strict=True):
            data = budget[budget["task"] == task]
            for i, (_, line) in enumerate(data.groupby(curves, sort=False, dropna=False)):
                _budget_curve(ax, line.sort_values("steps"), f"C{i}")
            for row in teachers[teachers["task"] == task].drop_duplicates("task").itertuples():
                schedule = "a checkpoint" if pd.isna(row.steps) else f"its own schedule, {int(row.steps)} steps"
                ax.axhline(row.psnr, color="k", ls="--", lw=1.2,
                           label=f"teacher: {row.model} ({float(row.params) / 1e6:.3g} M; {schedule})")
            steps = sorted(data["steps"].unique())
            ax.set_xscale("log", base=2)
            ax.set_xticks(steps, [str(s) for s in steps])
            ax.set(xlabel="student training steps (log2 scale)", ylabel="PSNR (dB), mean over seeds",
                   title=f"{task}: PSNR vs training budget")
            ax.legend(fontsize=8, loc="best")
    return fig


def _budget_curve(ax: Axes, line: pd.DataFrame, color: str) -> None:
    """One architecture's PSNR against steps, its 95% band where there are two seeds or more."""
    first = line.iloc[0]
    others = "".join(f", {c.split('.')[-1]}={first[c]}" for c in line if c.startswith("axis."))
    ax.plot(line["steps"], line["psnr"], marker="o", color=color,
            label=f"{first['student']} ({first['params_M']:.3g} M{others})")
    if line["psnr_low"].notna().any():
        ax.fill_between(line["steps"], line["psnr_low"], line["psnr_high"], color=color, alpha=0.2, lw=0)
