"""The figures of a study (seaborn on matplotlib's object API: no pyplot state, rendered by Agg
for PNG), each saved as PNG beside a vector twin (SVG for plots, PDF for image figures): ablation
intervals, PSNR vs cost with the Pareto front (one row of panels per task), training curves,
teacher-student feature similarity over training, realised speed-up vs MAC ratio, and PSNR vs
training steps (a study varying the students' steps). Every figure colours variants, the teacher
and loss terms from :mod:`.colours`. Figures drawn from the kept outputs (restorations, error and
attention maps) are in :mod:`bench.report.qualitative`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from bench.spec.grid import REFERENCE_LABEL
from skd_core.atomic import atomic_write

from .budget import COLUMNS as BUDGET_COLUMNS
from .colours import TEACHER_COLOUR, label_colours
from .records import CURVE_METRICS
from .stats import BEST, LEVEL, pareto_front

PLOT_FORMATS = ("png", "svg")
#: image figures: the PDF holds the same pixels, with its titles as text
IMAGE_FORMATS = ("png", "pdf")
#: every format a figure may be written in (a report removes the stale ones)
FORMATS = ("png", "svg", "pdf")
#: metadata keys set to None so that a figure's bytes do not depend on when it was drawn
NO_DATE = {"svg": {"Date": None}, "pdf": {"CreationDate": None}, "png": {}}
DPI = 150
STYLE = "whitegrid"
CURVE_TITLES = {"loss": "training loss (total)", "pixel_l1": "pixel L1 to ground truth",
                "val_psnr": "validation PSNR (dB)"}


#: figures of images (restored outputs, error and attention maps): their vector twin is a PDF,
#: since an SVG would hold the same pixels as base64 text at about twice the size
RASTER_PREFIXES = ("qualitative", "error", "attention")
#: a panel's marker per variant, in colour order, so that points that coincide stay told apart
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "<", ">", "p", "h")
#: cost column of the summary table -> axis name, for the Pareto panels
COSTS = {"macs_G": "MACs (G)", "params_M": "params (M)"}
#: points at one cost are spread over this fraction of a panel's x range (of a decade on a log axis)
SPREAD = 0.03


def figure_formats(stem: Path) -> tuple[str, ...]:
    """:data:`IMAGE_FORMATS` for an image figure (:data:`RASTER_PREFIXES`), else :data:`PLOT_FORMATS`."""
    return IMAGE_FORMATS if stem.name.startswith(RASTER_PREFIXES) else PLOT_FORMATS


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and its vector twin (:func:`figure_formats`) atomically, without
    timestamps; removes the stem's other formats an earlier report left. Returns the PNG first."""
    formats = figure_formats(stem)
    paths = [stem.with_suffix(f".{fmt}") for fmt in formats]
    for fmt in FORMATS:
        if fmt not in formats:
            stem.with_suffix(f".{fmt}").unlink(missing_ok=True)
    for path, fmt in zip(paths, formats, strict=True):
        atomic_write(path, lambda p, fmt=fmt: fig.savefig(p, format=fmt, dpi=DPI, metadata=NO_DATE[fmt],
                                                          bbox_inches="tight"))
    return paths


def _legend_outside(fig: Figure, handles: list, labels: list[str], title: str | None = None) -> None:
    """One legend for the whole figure, right of every panel (never over the data)."""
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, title=title, title_fontsize=8)


def ablation_figure(cells: pd.DataFrame, summary: pd.DataFrame, colours: Mapping[str, str] | None = None) -> Figure:
    """Per task: PSNR per variant (seeds as dots, mean with its 95% t interval) and the paired
    difference to the scratch student with its 95% interval; each variant in its colour
    (``colours``: label -> colour, :func:`.colours.label_colours` of the labels by default)."""
    done = cells[cells["status"] == "done"].assign(psnr=lambda f: f["metrics.psnr"].astype(float))
    tasks = list(summary["task"].unique())
    labels = list(summary["label"].unique())
    colours = dict(colours or label_colours(labels))
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(10, 0.45 * len(labels) * len(tasks) + 1.6), layout="constrained")
        axes = fig.subplots(len(tasks), 2, squeeze=False)
        for (ax_psnr, ax_diff), task in zip(axes, tasks, strict=True):
            rows = summary[summary["task"] == task].set_index("label").reindex(labels)
            y = np.arange(len(labels))
            sns.stripplot(data=done[done["task"] == task], x="psnr", y="label", order=labels, hue="label",
                          hue_order=labels, palette=colours, legend=False, ax=ax_psnr, size=4, jitter=0.15,
                          alpha=0.6)
            _intervals(ax_psnr, rows["psnr_mean"], rows["psnr_low"], rows["psnr_high"], y)
            ax_psnr.set(xlabel="PSNR (dB)", ylabel="", title=f"{task}: PSNR per seed, mean ± {LEVEL:.0%} CI")
            sns.barplot(x=rows["d_psnr"].fillna(0).to_numpy(), y=labels, order=labels, hue=labels, hue_order=labels,
                        palette=colours, legend=False, ax=ax_diff)
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


def pareto_costs(table: pd.DataFrame) -> list[str]:
    """The costs (:data:`COSTS`) in which the students of some task differ at the printed precision:
    the panel columns of :func:`pareto_figure`; empty (no figure) when every student of every task
    has the same MACs and params, or none was measured."""
    students = table[table["role"] == "student"]
    return [cost for cost in COSTS if cost in students and any(
        group[cost].astype(float).dropna().round(BEST[cost][1]).nunique() > 1
        for _, group in students.groupby("task", sort=False))]


def pareto_figure(table: pd.DataFrame, colours: Mapping[str, str] | None = None) -> Figure:
    """One row of panels per task (each its own PSNR axis) and one column per cost in which the
    students differ (:func:`pareto_costs`): PSNR (mean over seeds, 95% t interval as error bars)
    against the cost per variant (its colour from ``colours`` and a marker of its own), the teacher
    as a star, and the task's Pareto front (lower cost, higher PSNR). Points at one cost are spread
    sideways by :data:`SPREAD` so none hides another. The legend is outside the panels."""
    costs = pareto_costs(table)
    tasks = list(dict.fromkeys(table["task"]))
    labels = list(dict.fromkeys(table.loc[table["role"] == "student", "label"]))
    colours = dict(colours or label_colours(labels))
    markers = {label: MARKERS[i % len(MARKERS)] for i, label in enumerate(labels)}
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(4.8 * len(costs) + 2.4, 3.6 * len(tasks) + 0.6), layout="constrained")
        axes = fig.subplots(len(tasks), len(costs), squeeze=False, sharey="row")
        for row, task in zip(axes, tasks, strict=True):
            for ax, cost in zip(row, costs, strict=True):
                data = table[(table["task"] == task)].dropna(subset=[cost, "psnr_mean"])
                _pareto_panel(ax, data, cost, colours, markers)
                ax.set(xlabel=COSTS[cost], ylabel="PSNR (dB), mean over seeds" if ax is row[0] else "",
                       title=f"{task}: PSNR vs {COSTS[cost]}")
        found = {label: handle for ax in axes.flat for handle, label in zip(*ax.get_legend_handles_labels(),
                                                                             strict=True)}
        entries = {**{label: found[label] for label in labels if label in found}, **found}  # the variants first
        _legend_outside(fig, list(entries.values()), list(entries),
                        f"error bars: {LEVEL:.0%} t interval over seeds;\npoints at one cost are spread sideways")
    return fig


def _pareto_panel(ax: Axes, data: pd.DataFrame, cost: str, colours: Mapping[str, str],
                  markers: Mapping[str, str]) -> None:
    students, teacher = data[data["role"] == "student"], data[data["role"] == "teacher"]
    x = data[cost].astype(float)
    log = len(x) > 0 and x.min() > 0 and x.max() > 10 * x.min()
    if log:
        ax.set_xscale("log")
    shown = _spread(students[cost].astype(float), log, float(x.max() - x.min()) or float(x.max()) or 1.0)
    for (_, row), at in zip(students.iterrows(), shown, strict=True):
        low, high = row.get("psnr_low", np.nan), row.get("psnr_high", np.nan)
        err = None if pd.isna(low) else [[row["psnr_mean"] - low], [high - row["psnr_mean"]]]
        ax.errorbar([at], [row["psnr_mean"]], yerr=err, fmt=markers[row["label"]], color=colours[row["label"]],
                    markersize=7, capsize=3, markeredgecolor="k", markeredgewidth=0.5, label=row["label"], zorder=3)
    for _, row in teacher.iterrows():
        ax.scatter([row[cost]], [row["psnr_mean"]], marker="*", s=220, color=TEACHER_COLOUR, edgecolor="k",
                   zorder=4, label=row["label"])
    front = data[pareto_front(x, data["psnr_mean"])].sort_values(cost)
    ax.plot(front[cost], front["psnr_mean"], drawstyle="steps-post", color="0.3", lw=1, ls="--",
            label="Pareto front (lower cost, higher PSNR)")


def _spread(x: pd.Series, log: bool, width: float) -> np.ndarray:
    """``x`` with the points that share a value (at the printed precision) spread around it, by
    :data:`SPREAD` of ``width`` (a linear axis) or of a decade (a log axis)."""
    shown = x.to_numpy(dtype=float).copy()
    for _, index in x.groupby(x.round(6)).groups.items():
        spots = np.flatnonzero(x.index.isin(index))
        offsets = (np.arange(len(spots)) - (len(spots) - 1) / 2) * SPREAD
        shown[spots] = shown[spots] * 10 ** offsets if log else shown[spots] + offsets * width
    return shown


def training_figure(history: pd.DataFrame, colours: Mapping[str, str] | None = None) -> Figure:
    """Per task: loss, pixel L1 and validation PSNR (those recorded) vs step per variant, mean over
    seeds with a ± 1 standard deviation band."""
    tasks = list(history["task"].unique())
    metrics = [m for m in CURVE_METRICS if (history["metric"] == m).any()]
    colours = dict(colours or label_colours(history["label"]))
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(4.2 * len(metrics) + 2, 3.4 * len(tasks)), layout="constrained")
        axes = fig.subplots(len(tasks), len(metrics), squeeze=False)
        for row, task in zip(axes, tasks, strict=True):
            for ax, metric in zip(row, metrics, strict=True):
                data = history[(history["task"] == task) & (history["metric"] == metric)]
                sns.lineplot(data=data, x="step", y="value", hue="label", errorbar="sd", ax=ax, palette=colours,
                             hue_order=_present(colours, data["label"]), legend=False)
                ax.set(xlabel="step", ylabel=CURVE_TITLES[metric], title=f"{task}: {CURVE_TITLES[metric]}")
                if metric != "val_psnr" and (data["value"] > 0).all() and len(data):
                    ax.set_yscale("log")
        _label_legend(fig, colours, history["label"])
    return fig


def _present(colours: Mapping[str, str], labels: pd.Series) -> list[str]:
    """The labels of ``colours`` that occur in ``labels``, in the palette's order."""
    return [label for label in colours if label in set(labels)]


def _label_legend(fig: Figure, colours: Mapping[str, str], labels: pd.Series, title: str | None = None) -> None:
    """A figure legend of the variants in ``labels``, one coloured line each."""
    shown = _present(colours, labels)
    _legend_outside(fig, [Line2D([], [], color=colours[label], lw=2) for label in shown], shown, title)


def similarity_figure(similarity: pd.DataFrame, colours: Mapping[str, str] | None = None) -> Figure:
    """Per task (a row) and tap (a column): linear CKA between student and teacher features vs
    training step per variant, mean over seeds with a ± 1 standard deviation band."""
    tasks = list(similarity["task"].unique())
    taps = list(similarity["tap"].unique())  # in the order the probe logs them: the forward order
    colours = dict(colours or label_colours(similarity["label"]))
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(2.8 * len(taps) + 2, 2.8 * len(tasks) + 0.4), layout="constrained")
        axes = fig.subplots(len(tasks), len(taps), squeeze=False, sharey=True)
        for row, task in zip(axes, tasks, strict=True):
            for ax, tap in zip(row, taps, strict=True):
                data = similarity[(similarity["task"] == task) & (similarity["tap"] == tap)]
                sns.lineplot(data=data, x="step", y="value", hue="label", errorbar="sd", ax=ax, palette=colours,
                             hue_order=_present(colours, data["label"]), legend=False)
                ax.set(xlabel="step", ylabel="linear CKA (student, teacher)", title=f"{task}: {tap}", ylim=(0, 1.02))
        _label_legend(fig, colours, similarity["label"])
        fig.suptitle("Teacher-student feature similarity during training (linear CKA over positions x channels, "
                     "fixed probe batch)", fontsize=10)
    return fig


def speedup_figure(speed: pd.DataFrame) -> Figure:
    """Realised speed-up (teacher ms per image / student ms per image) vs MAC ratio (teacher MACs /
    student MACs) per student model, with the y = x line (speed-up exactly as MACs promise)."""
    colours = label_colours(speed["student"])
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(5.5, 4.5), layout="constrained")
        ax = fig.subplots()
        sns.scatterplot(data=speed, x="mac_ratio", y="speedup", hue="student", palette=colours, s=70, ax=ax)
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
    """Per task: PSNR (dB, mean over the finished seeds, error bars the 95% t interval where two
    seeds or more finished) against the students' training steps (log2 axis) per student
    architecture (legend: params in M and seed count) from :func:`.budget.budget_frame`; a point
    not finished breaks its line and is marked x at the panel's foot; the task's teacher, trained on
    its own schedule, is a dashed horizontal line."""
    tasks = list(dict.fromkeys(budget["task"]))
    curves = ["student", *(c for c in budget if c not in BUDGET_COLUMNS)]  # what tells the curves apart
    colours = label_colours(budget["student"])
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(6.5 * len(tasks) + 3, 4.5), layout="constrained")
        axes = fig.subplots(1, len(tasks), squeeze=False)[0]
        for ax, task in zip(axes, tasks, strict=True):
            data = budget[budget["task"] == task]
            for i, (_, line) in enumerate(data.groupby(curves, sort=False, dropna=False)):
                _budget_curve(ax, line.sort_values("steps"), colours[line["student"].iloc[0]], 0.03 + 0.035 * i)
            for row in teachers[teachers["task"] == task].drop_duplicates("task").itertuples():
                schedule = "a checkpoint" if pd.isna(row.steps) else f"its own schedule, {int(row.steps)} steps"
                ax.axhline(row.psnr, color=TEACHER_COLOUR, ls="--", lw=1.4,
                           label=f"teacher: {row.model} ({float(row.params) / 1e6:.3g} M; {schedule})")
            steps = sorted(data["steps"].unique())
            ax.set_xscale("log", base=2)
            ax.set_xticks(steps, [str(s) for s in steps])
            ax.set(xlabel="student training steps (log2 scale)", ylabel="PSNR (dB), mean over seeds",
                   title=f"{task}: PSNR vs training budget")
        entries = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels(),
                                                                         strict=True)}
        if (budget["seeds"] < budget["planned"]).any():
            entries["x at the foot: a seed not finished (pending or failed)"] = Line2D([], [], color="0.3",
                                                                                       marker="x", ls="none")
        _legend_outside(fig, list(entries.values()), list(entries),
                        f"mean over the finished seeds; error bars: {LEVEL:.0%} t interval\nwhere two seeds or more "
                        "finished; a line breaks where none did")
    return fig


def _budget_curve(ax: Axes, line: pd.DataFrame, color: str, foot: float) -> None:
    """One architecture's PSNR against steps (NaN where no seed finished: the line breaks there),
    its 95% error bars where two seeds or more finished, an x at height ``foot`` (a fraction of the
    panel; one per curve, so that the marks of two curves at one step stay apart) where a seed is
    missing."""
    first = line.iloc[0]
    others = "".join(f", {c.split('.')[-1]}={first[c]}" for c in line if c.startswith("axis."))
    seeds = sorted(set(line.loc[line["seeds"] > 0, "seeds"]))
    count = "-".join(map(str, dict.fromkeys([seeds[0], seeds[-1]]))) if seeds else "no"
    plural = "seed" if seeds == [1] else "seeds"
    params = line["params_M"].dropna()
    size = f"{params.iloc[0]:.3g} M" if len(params) else "params unknown"
    ax.plot(line["steps"], line["psnr"], marker="o", color=color,
            label=f"{first['student']} ({size}{others}; {count} {plural})")
    ci = line[line["psnr_low"].notna()]
    if len(ci):
        ax.errorbar(ci["steps"], ci["psnr"], yerr=[ci["psnr"] - ci["psnr_low"], ci["psnr_high"] - ci["psnr"]],
                    fmt="none", ecolor=color, capsize=3)
    missing = line[line["seeds"] < line["planned"]]
    ax.plot(missing["steps"], [foot] * len(missing), marker="x", ls="none", color=color, markersize=8,
            transform=blended_transform_factory(ax.transData, ax.transAxes), clip_on=False)
