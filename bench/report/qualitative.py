"""Figures of what the restoration and the distillation do, from what each cell kept when it was
scored (never by running a model):

- **qualitative** (per task and test image): degraded input, teacher, scratch student, each
  distilled variant and the ground truth, each titled with its PSNR (dB) / SSIM, with one zoomed
  region drawn in every panel;
- **error** (same images): ``|output - ground truth|`` per method on the 0-255 scale (mean over
  R, G, B; on BT.601 Y for Y-scored tasks), one colour scale;
- **attention** (the first cell whose method saved ``attention/<tap>/...`` diagnostics): the
  channel cross-net map and rows of the spatial map at each tap it kept.

Each variant (label) is shown by one model: its lowest seed that finished. The restored images are
the uint8 PNGs the cells kept (the values their scores were computed from), the inputs and ground
truths the evaluated test pairs the run store kept, so a panel's PSNR, computed in the task's
colour space and crop border as recorded, equals the cell's per-image score. Each figure is written
as a PNG and a PDF twin (:func:`.figures.save_figure`; titles and scores as text in the PDF).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from bench.spec.grid import REFERENCE_LABEL, QualitativeOptions
from bench.store import RunStore, stem_part
from skd_core.errors import ConfigError, unknown
from skd_core.metrics import psnr_ssim, quantize, rgb_to_y

from .records import CellResult, GridRun, teacher_record

#: (title, file stem, draw, why not drawn -- empty when it can be drawn), as ``build._figures`` takes
Plan = tuple[str, str, Callable[[], Figure], str]

INPUT_LABEL = "degraded input"
GT_LABEL = "ground truth"
ZOOM_COLOR = "#ffd400"
ATTENTION_PREFIX = "attention/"


@dataclass(frozen=True)
class Method:
    """One restoring model of a comparison: its panel label and its kept outputs (``name -> path``)."""

    label: str
    outputs: dict[str, str]


@dataclass(frozen=True)
class TestPair:
    """An evaluated test pair as kept: uint8 ``H, W, 3`` input and ground truth."""

    name: str
    lq: np.ndarray
    gt: np.ndarray


@dataclass
class Comparison:
    """One task's methods (teacher, scratch, distilled variants) on its chosen test images, scored
    in the recorded colour space and crop border."""

    task: str
    color: str
    crop_border: int
    max_side: int
    methods: list[Method]
    pairs: list[TestPair]
    store: RunStore
    _outputs: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def output(self, method: Method, pair: TestPair) -> np.ndarray:
        """``method``'s kept restoration of ``pair``: uint8 ``H, W, 3``."""
        key = (method.label, pair.name)
        if key not in self._outputs:
            self._outputs[key] = self.store.image(method.outputs[pair.name])
        return self._outputs[key]

    def scores(self, image: np.ndarray, pair: TestPair) -> dict[str, float]:
        return psnr_ssim(image, pair.gt, color=self.color, crop_border=self.crop_border)


def default_region_size(height: int, width: int) -> int:
    """About a fifth of the shorter side, rounded down to a multiple of 8 (at least 8, at most the side)."""
    short = min(height, width)
    return min(short, max(8, short // 5 // 8 * 8))


def pick_region(outputs: Sequence[np.ndarray], size: int) -> tuple[int, int]:
    """``(top, left)`` of the ``size x size`` window where ``outputs`` (HWC or HW, equal shapes) differ
    most: the largest window sum (box filter, summed-area table) of the per-pixel standard deviation
    across outputs, averaged over channels. Ties go to the smallest top, then the smallest left."""
    stack = np.stack([np.asarray(o, dtype=np.float64) for o in outputs])
    spread = stack.std(axis=0)
    if spread.ndim == 3:
        spread = spread.mean(axis=2)
    h, w = spread.shape
    if not 1 <= size <= min(h, w):
        raise ConfigError(f"region size {size} does not fit images of size {h}x{w}")
    table = np.zeros((h + 1, w + 1))
    table[1:, 1:] = spread.cumsum(0).cumsum(1)
    sums = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)  # argmax: first maximum, row-major
    return int(top), int(left)


def error_map(image: np.ndarray, gt: np.ndarray, color: str) -> np.ndarray:
    """``|image - gt|`` as ``H x W`` on the 0-255 scale after the scoring's clamp and uint8 rounding:
    on BT.601 Y when ``color == "y"``, else the mean over R, G, B."""
    a, b = quantize(image), quantize(gt)
    if color == "y":
        return np.abs(rgb_to_y(a) - rgb_to_y(b))
    return np.abs(a - b).mean(axis=2)


def _lowest_seeds(grid: GridRun, results: Sequence[CellResult], task: str) -> dict[str, CellResult]:
    """Label -> the lowest-seed finished cell of ``task`` that kept outputs, in grid label order."""
    chosen: dict[str, CellResult] = {}
    for r in sorted(results, key=lambda r: r.cell.seed):
        if r.cell.task == task and r.status == "done" and r.cell.label not in chosen and r.record.get("outputs"):
            chosen[r.cell.label] = r
    order = grid.labels()
    return dict(sorted(chosen.items(), key=lambda kv: order.index(kv[0])))


def _teacher(grid: GridRun, cells: Sequence[CellResult]) -> Method | None:
    """The teacher the task's finished cells used, with the outputs its record kept."""
    for r in cells:
        used = r.record.get("teacher")
        record = teacher_record(grid.store, used["id"]) if used else None
        if record and record.get("outputs"):
            return Method(f"teacher ({record.get('model', r.cell.teacher_model)})", record["outputs"])
    return None


def comparison(grid: GridRun, results: Sequence[CellResult], task: str) -> Comparison | str:
    """The task's :class:`Comparison` per ``grid.qualitative``, or why there is none. Unknown image
    names raise ``UnknownNameError`` listing the kept ones."""
    cells = _lowest_seeds(grid, results, task)
    if not cells:
        return f"no finished {task} cell kept its restored test images"
    ordered = sorted(cells.items(), key=lambda kv: kv[0] != REFERENCE_LABEL)  # scratch first, stable
    students = [Method(label, r.record["outputs"]) for label, r in ordered]
    first = next(iter(cells.values())).record
    testset = grid.store.testset(first["testset"])
    names = [n for n in first["outputs"] if n in testset and all(n in m.outputs for m in students)]
    options: QualitativeOptions = grid.qualitative
    if options.images:
        for name in options.images:
            if name not in names:
                raise unknown("test image", name, names, where=f"report.qualitative.images ({task}; the images "
                              "every cell kept when scored: the first two test images and those named in the "
                              "spec when the cells ran -- rerun them with --force to keep others)")
        names = [n for n in names if n in options.images]
    else:
        names = names[:options.max_images]
    teacher = _teacher(grid, list(cells.values()))
    # a teacher keeps its first two test images only (its id does not depend on a report): shown when it has them
    methods = ([teacher] if teacher and all(n in teacher.outputs for n in names) else []) + students
    pairs = [TestPair(n, grid.store.image(testset[n]["lq"]), grid.store.image(testset[n]["gt"])) for n in names]
    metrics = first["metrics"]
    return Comparison(task, metrics["color"], int(metrics["crop_border"]), int(metrics.get("max_side") or 0),
                      methods, pairs, grid.store)


def region_of(comp: Comparison, pair: TestPair, options: QualitativeOptions) -> tuple[int, int, int]:
    """``(top, left, size)`` of the zoomed region: the configured one (checked to fit) or
    :func:`pick_region` over the methods' outputs with :func:`default_region_size`."""
    h, w = pair.gt.shape[:2]
    if options.region:
        top, left, size = options.region
        if top + size > h or left + size > w:
            raise ConfigError(f"report.qualitative.region {list(options.region)} does not fit test image "
                              f"{pair.name!r} of size {h}x{w} (as evaluated)")
        return top, left, size
    size = default_region_size(h, w)
    return (*pick_region([comp.output(m, pair) for m in comp.methods], size), size)


def _panels(comp: Comparison, pair: TestPair) -> list[tuple[str, np.ndarray]]:
    return [(INPUT_LABEL, pair.lq), *((m.label, comp.output(m, pair)) for m in comp.methods)]


def _scoring(comp: Comparison) -> str:
    crop = f"{comp.max_side}x{comp.max_side} centre crop" if comp.max_side else "whole image"
    return (f"PSNR (dB) / SSIM on {'Y (BT.601)' if comp.color == 'y' else 'RGB'}, "
            f"crop border {comp.crop_border} px, {crop} as evaluated")


def _grid_axes(fig: Figure, count: int, columns: int = 4) -> list[Axes]:
    cols = min(count, columns)
    rows = -(-count // cols)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_axis_off()
    return list(axes[:count])


def qualitative_figure(comp: Comparison, pair: TestPair, region: tuple[int, int, int]) -> Figure:
    """Input, every method and the ground truth side by side, each titled with PSNR / SSIM, the
    ``region`` outlined and enlarged in an inset (in the corner farthest from the region)."""
    top, left, size = region
    h, w = pair.gt.shape[:2]
    panels = [*_panels(comp, pair), (GT_LABEL, pair.gt)]
    inset_x = 0.02 if left + size / 2 > w / 2 else 0.56
    inset_y = 0.56 if top + size / 2 > h / 2 else 0.02  # axes fractions: y = 0 is the bottom
    cols = min(len(panels), 4)
    fig = Figure(figsize=(3.2 * cols, 3.5 * -(-len(panels) // cols) + 0.4), layout="constrained")
    for ax, (label, image) in zip(_grid_axes(fig, len(panels)), panels, strict=True):
        shown = np.clip(np.asarray(image, dtype=np.float64) / 255.0 if image.dtype == np.uint8 else image, 0.0, 1.0)
        ax.imshow(shown, interpolation="nearest")
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), size, size, fill=False, edgecolor=ZOOM_COLOR, lw=1.5))
        inset = ax.inset_axes((inset_x, inset_y, 0.42, 0.42))
        inset.imshow(shown[top:top + size, left:left + size], interpolation="nearest")
        inset.set_xticks([])
        inset.set_yticks([])
        for spine in inset.spines.values():
            spine.set_edgecolor(ZOOM_COLOR)
            spine.set_linewidth(2)
        title = label if label == GT_LABEL else f"{label}\n{_score_text(comp.scores(image, pair))}"
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.suptitle(f"{comp.task} / {pair.name}: {_scoring(comp)}; zoom rows {top}-{top + size - 1}, "
                 f"columns {left}-{left + size - 1}", fontsize=9)
    return fig


def _score_text(scores: dict[str, float]) -> str:
    return f"{scores['psnr']:.2f} dB / {scores['ssim']:.4f}"


def error_figure(comp: Comparison, pair: TestPair) -> Figure:
    """:func:`error_map` of the input and of every method, one colour scale (0 to the 99.5th
    percentile of the methods' errors) and one colourbar."""
    color = comp.color
    maps = [(label, error_map(image, pair.gt, color)) for label, image in _panels(comp, pair)]
    vmax = max(float(np.percentile(np.stack([m for _, m in maps[1:]]), 99.5)), 1.0)
    cols = min(len(maps), 4)
    fig = Figure(figsize=(3.2 * cols + 0.8, 3.3 * -(-len(maps) // cols) + 0.4), layout="constrained")
    axes = _grid_axes(fig, len(maps))
    for ax, (label, values) in zip(axes, maps, strict=True):
        im = ax.imshow(values, cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_title(f"{label}\nmean {values.mean():.2f}", fontsize=9)
        ax.set_axis_off()
    over = max(float(m.max()) for _, m in maps) > vmax
    fig.colorbar(im, ax=axes, shrink=0.8, extend="max" if over else "neither",
                 label=f"|error| on {'Y' if color == 'y' else 'RGB (mean of channels)'}, 0-255 scale")
    fig.suptitle(f"{comp.task} / {pair.name}: absolute error to the ground truth "
                 f"({'whole image' if not comp.max_side else f'{comp.max_side}x{comp.max_side} centre crop'})",
                 fontsize=9)
    return fig


def image_plans(grid: GridRun, results: Sequence[CellResult]) -> list[Plan]:
    """The qualitative and error figure plans of every task of ``grid`` (one not-drawn plan per
    figure kind for a task without a finished model)."""
    plans: list[Plan] = []
    for task in grid.tasks:
        comp = comparison(grid, results, task)
        if isinstance(comp, str):
            plans += [(f"Qualitative comparison: {task}", f"qualitative_{stem_part(task)}", Figure, comp),
                      (f"Error maps: {task}", f"error_{stem_part(task)}", Figure, comp)]
            continue
        for pair in comp.pairs:
            name = f"{stem_part(task)}_{stem_part(pair.name)}"
            plans += [
                (f"Qualitative comparison: {task}, {pair.name}", f"qualitative_{name}",
                 lambda c=comp, p=pair: qualitative_figure(c, p, region_of(c, p, grid.qualitative)), ""),
                (f"Error maps |output - ground truth|: {task}, {pair.name}", f"error_{name}",
                 lambda c=comp, p=pair: error_figure(c, p), ""),
            ]
    return plans


# --- cross-net attention ------------------------------------------------------------------------


def attention_cell(grid: GridRun, results: Sequence[CellResult]) -> CellResult | str:
    """The cell whose attention is drawn: finished, with ``attention/...`` diagnostics kept; the
    grid's first task, then the lowest seed, then grid label order. Else why none."""
    labels = grid.labels()
    kept = [r for r in results if r.status == "done" and r.record.get("diagnostics")
            and any(k.startswith(ATTENTION_PREFIX) for k in r.record.get("diagnostics_keys", []))]
    if not kept:
        return "no finished cell kept cross-net attention diagnostics (methods with MCA keep them when scored)"
    return min(kept, key=lambda r: (grid.tasks.index(r.cell.task), r.cell.seed, labels.index(r.cell.label)))


@dataclass
class AttentionMaps:
    """What :func:`attention_figure` draws: the input crop and, per tap, the channel map
    (``C_T x C_S``, the student adapted to the teacher's width as in the loss), the query token
    positions ``(row, column)`` at the tap's resolution and their spatial maps (``Q, H, W``)."""

    label: str
    task: str
    seed: int
    image_name: str
    image: np.ndarray
    channel: dict[str, np.ndarray]
    queries: dict[str, list[tuple[int, int]]]
    spatial: dict[str, np.ndarray]


def attention_maps(result: CellResult, store: RunStore) -> AttentionMaps:
    """The attention diagnostics the cell kept (``attention/<tap>/{channel,spatial,queries}`` and the
    ``input`` crop they were computed on), taps in the order the method gave them."""
    arrays = store.diagnostics(result.record["diagnostics"])
    taps = list(dict.fromkeys(k[len(ATTENTION_PREFIX):].rpartition("/")[0] for k in result.record["diagnostics_keys"]
                              if k.startswith(ATTENTION_PREFIX)))
    channel = {t: arrays[f"{ATTENTION_PREFIX}{t}/channel"] for t in taps}
    spatial = {t: arrays[f"{ATTENTION_PREFIX}{t}/spatial"] for t in taps}
    queries = {t: [tuple(int(v) for v in q) for q in arrays[f"{ATTENTION_PREFIX}{t}/queries"]] for t in taps}
    image = np.asarray(arrays["input"]).transpose(1, 2, 0)
    name = (result.record.get("diagnostics_input") or {}).get("image", "the first test image")
    return AttentionMaps(result.cell.label, result.cell.task, result.cell.seed, name, image, channel, queries, spatial)


def attention_figure(maps: AttentionMaps) -> Figure:
    """Per tap (a row): the channel map as a heat map, the input crop with the query tokens marked,
    and one spatial map (softmax over student tokens) per query, its query marked."""
    taps = list(maps.channel)
    n_q = max(len(q) for q in maps.queries.values())
    fig = Figure(figsize=(2.6 * (n_q + 2) + 0.6, 2.7 * len(taps) + 0.5), layout="constrained")
    axes = fig.subplots(len(taps), n_q + 2, squeeze=False)
    side = maps.image.shape[0]
    for row, path in zip(axes, taps, strict=True):
        sns.heatmap(maps.channel[path], ax=row[0], cmap="viridis", vmin=0.0, square=True,
                    xticklabels=False, yticklabels=False, cbar_kws={"shrink": 0.7})
        c_t, c_s = maps.channel[path].shape
        row[0].set(title=f"{path}: channel map {c_t}x{c_s}", xlabel="student channel (adapted)",
                   ylabel="teacher channel")
        h, w = maps.spatial[path].shape[1:]
        row[1].imshow(np.clip(maps.image, 0.0, 1.0), interpolation="nearest")
        for k, (y, x) in enumerate(maps.queries[path]):
            cy, cx = (y + 0.5) * side / h - 0.5, (x + 0.5) * side / w - 0.5
            row[1].plot(cx, cy, marker="o", ms=9, mfc="none", mec=ZOOM_COLOR, mew=2)
            row[1].annotate(str(k + 1), (cx, cy), xytext=(5, 5), textcoords="offset points", color=ZOOM_COLOR,
                            fontsize=9, weight="bold")
        row[1].set_title(f"queries at {h}x{w} tokens", fontsize=9)
        row[1].set_axis_off()
        for k, (ax, (y, x)) in enumerate(zip(row[2:], maps.queries[path], strict=False)):
            ax.imshow(maps.spatial[path][k], cmap="viridis", interpolation="nearest")
            ax.plot(x, y, marker="x", ms=8, color="white", mew=2)
            ax.set_title(f"spatial row, query {k + 1} ({y}, {x})", fontsize=9)
            ax.set_axis_off()
    fig.suptitle(f"Cross-net attention of {maps.label!r} ({maps.task}, seed {maps.seed}) on a {side}x{side} "
                 f"centre crop of {maps.image_name}: teacher queries, student keys; rows sum to 1", fontsize=9)
    return fig


def attention_plan(grid: GridRun, results: Sequence[CellResult]) -> Plan:
    """The attention figure's plan (drawn from :func:`attention_cell`), or why it is not drawn."""
    title, stem = "Cross-net attention maps (channel and spatial MCA)", "attention"
    chosen = attention_cell(grid, results)
    if isinstance(chosen, str):
        return title, stem, Figure, chosen
    return title, stem, lambda: attention_figure(attention_maps(chosen, grid.store)), ""
