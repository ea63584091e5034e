"""Loss balance and attention entropy from the training histories: what each loss term did.

Cells log, at 12 evenly spaced steps (first and last included), each weighted loss term's value,
the L2 norm of its gradient on the student's parameters (``grad/<term>``), its share of the summed
norms (``share/<term>``), the cosine of its gradient with the pixel L1's (``cos/<term>``) and the
method's monitor scalars, e.g. the normalised entropy of the cross-net attention maps
(``entropy/<tap>/<dim>``, 1 = uniform) and a median-heuristic bandwidth (``sigma/<tap>``).

A distillation term is **inert** when its median gradient share is under :data:`INERT_SHARE` and
**dominant** when its median gradient norm exceeds :data:`DOMINANT_RATIO` times the pixel L1's
(medians over the logged steps of each cell, then means over seeds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .colours import label_colours, term_colours
from .records import CellResult

RECONSTRUCTION = "pixel_l1"
INERT_SHARE = 0.02
DOMINANT_RATIO = 3.0
STYLE = "whitegrid"
COLUMNS = ["label", "task", "seed", "step", "key", "value"]


def monitor_frame(results: Sequence[CellResult]) -> pd.DataFrame:
    """The logged balance rows of finished cells in long form: label, task, seed, step, key, value."""
    rows = [{"label": r.cell.label, "task": r.cell.task, "seed": r.cell.seed, "step": entry["step"],
             "key": key, "value": value}
            for r in results if r.status == "done"
            for entry in (r.record.get("training") or {}).get("history", []) if entry.get("monitor")
            for key, value in entry.items() if key not in ("monitor", "step")]
    return pd.DataFrame(rows, columns=COLUMNS)


def _terms(monitor: pd.DataFrame, prefix: str) -> pd.DataFrame:
    part = monitor[monitor["key"].str.startswith(prefix)].copy()
    part["term"] = part["key"].str.slice(len(prefix))
    return part


def balance_table(monitor: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, label, term): ``median_share`` (of the summed gradient norms),
    ``grad_ratio`` (gradient norm / the pixel L1's), ``cosine`` (with the pixel L1's gradient) --
    each the median over a cell's logged steps, then the mean over seeds -- ``seeds``, and the
    ``inert`` / ``dominant`` flags (distillation terms only)."""
    if monitor.empty:
        return pd.DataFrame(columns=["task", "label", "term", "median_share", "grad_ratio", "cosine", "seeds",
                                     "inert", "dominant"])
    index = ["task", "label", "seed", "step"]
    share = _terms(monitor, "share/").set_index([*index, "term"])["value"]
    grad = _terms(monitor, "grad/").set_index([*index, "term"])["value"]
    cos = _terms(monitor, "cos/").set_index([*index, "term"])["value"]
    recon = grad.xs(RECONSTRUCTION, level="term")
    ratio = grad / recon.reindex(grad.droplevel("term").index).to_numpy()
    per_step = pd.DataFrame({"share": share, "ratio": ratio, "cosine": cos}).reset_index()
    per_cell = per_step.groupby(["task", "label", "term", "seed"], sort=False)[["share", "ratio", "cosine"]].median()
    table = per_cell.groupby(["task", "label", "term"], sort=False).agg(
        median_share=("share", "mean"), grad_ratio=("ratio", "mean"), cosine=("cosine", "mean"),
        seeds=("share", "size")).reset_index()
    distill = table["term"] != RECONSTRUCTION
    table["inert"] = distill & (table["median_share"] < INERT_SHARE)
    table["dominant"] = distill & (table["grad_ratio"] > DOMINANT_RATIO)
    return table


def balance_marks(table: pd.DataFrame) -> dict[tuple[str, str], str]:
    """``(task, label) -> "dominant: contrastive; inert: skd_channel"`` for variants with a flagged term."""
    marks = {}
    for (task, label), group in table.groupby(["task", "label"], sort=False):
        parts = [f"{flag}: {', '.join(group.loc[group[flag], 'term'])}" for flag in ("dominant", "inert")
                 if group[flag].any()]
        if parts:
            marks[(task, label)] = "; ".join(parts)
    return marks


def balance_caption(table: pd.DataFrame) -> str:
    """The rule behind the marks, for table captions (empty when no cell logged its balance)."""
    if table.empty:
        return ""
    return (f"Loss balance (student gradients, 12 logged steps): a term is marked inert when its median share of "
            f"the summed gradient norms is below {INERT_SHARE:.0%}, dominant when its gradient norm is above "
            f"{DOMINANT_RATIO:g}x the pixel L1's; see tables/balance.csv.")


def balance_figure(monitor: pd.DataFrame) -> Figure:
    """Gradient share of each loss term over training, one panel per (task, variant), mean over
    seeds; each term in its one colour (:func:`.colours.term_colours`) in every panel, one legend."""
    shares = _terms(monitor, "share/")
    panels = shares[["task", "label"]].drop_duplicates().to_numpy().tolist()
    colours = term_colours(shares["term"])
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(3.2 * cols + 2.4, 2.7 * rows + 0.5), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
        for ax, (task, label) in zip(axes.flat, panels, strict=False):
            data = shares[(shares["task"] == task) & (shares["label"] == label)]
            sns.lineplot(data=data, x="step", y="value", hue="term", errorbar=None, marker="o", markersize=3, ax=ax,
                         palette=colours, hue_order=[t for t in colours if t in set(data["term"])], legend=False)
            ax.axhline(INERT_SHARE, color="0.5", ls=":", lw=1)
            ax.set(title=f"{task}: {label}", xlabel="step", ylabel="share of gradient norm", ylim=(0, 1.02))
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        fig.legend([Line2D([], [], color=c, lw=2, marker="o", markersize=3) for c in colours.values()], list(colours),
                   loc="outside right upper", fontsize=8, title="loss term", title_fontsize=8)
        fig.suptitle(f"Loss balance: each term's share of the summed gradient norms on the student "
                     f"(dotted: the {INERT_SHARE:.0%} inert line)", fontsize=10)
    return fig


def entropy_figure(monitor: pd.DataFrame, colours: Mapping[str, str] | None = None) -> Figure:
    """Normalised entropy of the cross-net attention maps (1 = uniform) per tap over training:
    one panel per (task, tap), one line per variant (its colour from ``colours``, label -> colour)
    and dimension (line style), mean over seeds."""
    ent = monitor[monitor["key"].str.startswith("entropy/")].copy()
    parts = ent["key"].str.split("/")
    ent["tap"], ent["dim"] = parts.str[1], parts.str[2]
    panels = ent[["task", "tap"]].drop_duplicates().to_numpy().tolist()
    colours = dict(colours or label_colours(ent["label"]))
    colours = {label: c for label, c in colours.items() if label in set(ent["label"])}
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(3.2 * cols + 2.2, 2.7 * rows + 0.5), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
        for i, (ax, (task, tap)) in enumerate(zip(axes.flat, panels, strict=False)):
            data = ent[(ent["task"] == task) & (ent["tap"] == tap)]
            sns.lineplot(data=data, x="step", y="value", hue="label", style="dim", errorbar=None, ax=ax,
                         palette=colours, hue_order=list(colours), legend="auto" if i == len(panels) - 1 else False)
            ax.set(title=f"{task}: {tap}", xlabel="step", ylabel="normalised entropy", ylim=(0, 1.02))
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        legend = list(axes.flat)[len(panels) - 1].get_legend()
        if legend is not None:
            legend.set_bbox_to_anchor((1.02, 0.5))
            legend.set_loc("center left")
        fig.suptitle("Cross-net attention entropy during training (1 = uniform rows; channel: C_T x C_S map, "
                     "spatial: sampled token rows)", fontsize=10)
    return fig
