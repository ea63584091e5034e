"""Figures of what the restoration and the distillation do, from the saved weights of a grid's cells:

- **qualitative** (per task and test image): degraded input, teacher, scratch student, each
  distilled variant and the ground truth, each titled with its PSNR (dB) / SSIM, with one zoomed
  region drawn in every panel;
- **error** (same images): ``|output - ground truth|`` per method on the 0-255 scale after the
  scoring's uint8 quantisation (mean over R, G, B; on BT.601 Y for Y-scored tasks), one colour scale;
- **attention** (one SKD cell with channel MCA): the channel cross-net map and rows of the spatial
  map at up to three taps, from :func:`skd_core.mca.attention_weights` with the cell's settings.

Each variant (label) is shown by one model: its lowest seed that finished. Images are the task's
test pairs centre-cropped to the profile's ``eval_max_side`` as the cells were scored, and scores
use the task's colour space and crop border (:func:`skd_core.metrics.psnr_ssim`), so a panel's
PSNR equals the cell's per-image score. Everything runs on the CPU.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import seaborn as sns
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from safetensors.torch import load_file
from torch import nn

from skd_core.data import ImagePair, TaskInfo, get_task, load_pairs
from skd_core.errors import ConfigError, unknown
from skd_core.methods import DistillOptions, build_distiller
from skd_core.metrics import psnr_ssim, quantize, rgb_to_y
from skd_core.models import build_model, load_checkpoint
from skd_core.taps import FeatureTaps
from skd_core.train.checkpoint import WEIGHTS as CHECKPOINT_WEIGHTS
from skd_core.train.evaluate import centre_crop, restore

from ..grid import REFERENCE_LABEL, Grid, QualitativeOptions
from ..jobs import WEIGHTS, StudentJob
from .records import CellResult

#: (title, file stem, draw, why not drawn -- empty when it can be drawn), as ``build._figures`` takes
Plan = tuple[str, str, Callable[[], Figure], str]

INPUT_LABEL = "degraded input"
GT_LABEL = "ground truth"
ZOOM_COLOR = "#ffd400"
#: side of the attention figure's input crop (pixels, a multiple of 8) and the most taps it shows
ATTENTION_SIDE = 64
ATTENTION_TAPS = 3
#: the spatial map's query tokens, as (row, column) fractions of the tap's feature map
QUERY_POINTS = ((0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75))


@dataclass(frozen=True)
class Method:
    """One restoring model of a comparison: its panel label, preset name and weights file."""

    label: str
    model: str
    weights: Path


@dataclass
class Comparison:
    """One task's methods (teacher, scratch, distilled variants) on its chosen test images, cropped
    as evaluated; each model is loaded and each (method, image) restored once."""

    task: TaskInfo
    methods: list[Method]
    pairs: list[ImagePair]
    max_side: int
    _models: dict[str, nn.Module] = field(default_factory=dict)
    _outputs: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def output(self, method: Method, pair: ImagePair) -> np.ndarray:
        """``method``'s restoration of ``pair.lq``: HWC float32 (not clipped)."""
        key = (method.label, pair.name)
        if key not in self._outputs:
            if method.label not in self._models:
                self._models[method.label] = load_checkpoint(build_model(method.model), method.weights).eval()
            self._outputs[key] = restore(self._models[method.label], pair.lq)
        return self._outputs[key]

    def scores(self, image: np.ndarray, pair: ImagePair) -> dict[str, float]:
        return psnr_ssim(image, pair.gt, color=self.task.color_space, crop_border=self.task.crop_border)


def stem_part(name: str) -> str:
    """``name`` with every character outside ``[A-Za-z0-9_-]`` replaced by ``-`` (for file stems)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


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


def _lowest_seeds(grid: Grid, results: Sequence[CellResult], runs_dir: Path, task: str) -> dict[str, CellResult]:
    """Label -> the lowest-seed finished cell of ``task`` that has a weights file, in grid label order."""
    chosen: dict[str, CellResult] = {}
    for r in sorted(results, key=lambda r: r.cell.seed):
        if (r.cell.task == task and r.status == "done" and r.cell.label not in chosen
                and (runs_dir / "cells" / r.cell.id / WEIGHTS).is_file()):
            chosen[r.cell.label] = r
    order = grid.labels()
    return dict(sorted(chosen.items(), key=lambda kv: order.index(kv[0])))


def _teacher(job: StudentJob, results: Sequence[CellResult], runs_dir: Path) -> Method | None:
    """The teacher the task's finished cells used, from its weights file or the profile's checkpoint."""
    profile = job.profile
    label = f"teacher ({profile.teacher})"
    if profile.teacher_checkpoint:
        return Method(label, profile.teacher, Path(profile.teacher_checkpoint))
    for r in results:
        used = (r.record or {}).get("teacher") if r.status == "done" and r.cell.task == job.task else None
        if used and (runs_dir / "teachers" / used["id"] / WEIGHTS).is_file():
            return Method(label, profile.teacher, runs_dir / "teachers" / used["id"] / WEIGHTS)
    return None


def comparison(grid: Grid, results: Sequence[CellResult], runs_dir: Path, task: str) -> Comparison | str:
    """The task's :class:`Comparison` per ``grid.qualitative``, or why there is none. Unknown image
    names raise ``UnknownNameError``."""
    cells = _lowest_seeds(grid, results, runs_dir, task)
    if not cells:
        return f"no finished {task} cell with a weights file ({WEIGHTS}) under {runs_dir / 'cells'}"
    first = next(iter(cells.values())).cell.job
    teacher = _teacher(first, results, runs_dir)
    ordered = sorted(cells.items(), key=lambda kv: kv[0] != REFERENCE_LABEL)  # scratch first, stable
    methods = ([teacher] if teacher else []) + [
        Method(label, r.cell.job.student, runs_dir / "cells" / r.cell.id / WEIGHTS) for label, r in ordered]
    profile = first.profile
    pairs = list(load_pairs(profile.test_data, task, profile.layout, "test"))
    options: QualitativeOptions = grid.qualitative
    if options.images:
        names = [p.name for p in pairs]
        for name in options.images:
            if name not in names:
                raise unknown("test image", name, names, where=f"report.qualitative.images ({task})")
        pairs = [p for p in pairs if p.name in options.images]
    else:
        pairs = pairs[:options.max_images]
    side = profile.eval_max_side
    if side:
        pairs = [ImagePair(p.name, centre_crop(p.lq, side), centre_crop(p.gt, side)) for p in pairs]
    return Comparison(get_task(task), methods, pairs, side)


def region_of(comp: Comparison, pair: ImagePair, options: QualitativeOptions) -> tuple[int, int, int]:
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


def _panels(comp: Comparison, pair: ImagePair) -> list[tuple[str, np.ndarray]]:
    return [(INPUT_LABEL, pair.lq), *((m.label, comp.output(m, pair)) for m in comp.methods)]


def _scoring(comp: Comparison) -> str:
    crop = f"{comp.max_side}x{comp.max_side} centre crop" if comp.max_side else "whole image"
    return (f"PSNR (dB) / SSIM on {'Y (BT.601)' if comp.task.color_space == 'y' else 'RGB'}, "
            f"crop border {comp.task.crop_border} px, {crop} as evaluated")


def _grid_axes(fig: Figure, count: int, columns: int = 4) -> list[Axes]:
    cols = min(count, columns)
    rows = -(-count // cols)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_axis_off()
    return list(axes[:count])


def qualitative_figure(comp: Comparison, pair: ImagePair, region: tuple[int, int, int]) -> Figure:
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
        shown = np.clip(image, 0.0, 1.0)
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
    fig.suptitle(f"{comp.task.name} / {pair.name}: {_scoring(comp)}; zoom rows {top}-{top + size - 1}, "
                 f"columns {left}-{left + size - 1}", fontsize=9)
    return fig


def _score_text(scores: dict[str, float]) -> str:
    return f"{scores['psnr']:.2f} dB / {scores['ssim']:.4f}"


def error_figure(comp: Comparison, pair: ImagePair) -> Figure:
    """:func:`error_map` of the input and of every method, one colour scale (0 to the 99.5th
    percentile of the methods' errors) and one colourbar."""
    color = comp.task.color_space
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
    fig.suptitle(f"{comp.task.name} / {pair.name}: absolute error to the ground truth "
                 f"({'whole image' if not comp.max_side else f'{comp.max_side}x{comp.max_side} centre crop'})",
                 fontsize=9)
    return fig


def image_plans(grid: Grid, results: Sequence[CellResult], runs_dir: Path) -> list[Plan]:
    """The qualitative and error figure plans of every task of ``grid`` (one not-drawn plan per
    figure kind for a task without a finished model)."""
    plans: list[Plan] = []
    for task in grid.tasks:
        comp = comparison(grid, results, runs_dir, task)
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


# --- cross-net attention of one SKD cell ---------------------------------------------------------


def attention_cell(grid: Grid, results: Sequence[CellResult], runs_dir: Path) -> CellResult | str:
    """The SKD cell whose attention is drawn: finished, MCA dims ``channel`` or ``both``, its training
    checkpoint kept; the grid's first task, then the lowest seed, then grid label order. Else why none."""
    labels = grid.labels()
    candidates = [r for r in results if r.status == "done" and r.cell.job.method == "skd"
                  and r.cell.job.options["mca_dims"] in ("channel", "both")]
    if not candidates:
        return "no finished SKD cell with MCA dims 'channel' or 'both' in the grid"
    kept = [r for r in candidates if (runs_dir / "cells" / r.cell.id / "checkpoint" / CHECKPOINT_WEIGHTS).is_file()]
    if not kept:
        return f"no SKD cell kept its training checkpoint (checkpoint/{CHECKPOINT_WEIGHTS}: student and adapters)"
    return min(kept, key=lambda r: (grid.tasks.index(r.cell.task), r.cell.seed, labels.index(r.cell.label)))


def _evenly(paths: Sequence[str], count: int) -> list[str]:
    index = np.unique(np.round(np.linspace(0, len(paths) - 1, min(count, len(paths)))).astype(int))
    return [paths[i] for i in index]


@dataclass
class AttentionMaps:
    """What :func:`attention_figure` draws: the input crop and, per tap, the channel map
    (``C_T x C_S``, the student adapted to the teacher's width as in the loss), the query token
    positions ``(row, column)`` at the tap's resolution and their spatial maps (``Q, H, W``)."""

    label: str
    task: str
    seed: int
    dims: str
    image_name: str
    image: np.ndarray
    channel: dict[str, np.ndarray]
    queries: dict[str, list[tuple[int, int]]]
    spatial: dict[str, np.ndarray]


def attention_maps(result: CellResult, runs_dir: Path, teacher: Method, pair: ImagePair) -> AttentionMaps:
    """Rebuild the cell's distiller (student, adapters from ``checkpoint/``; the frozen teacher)
    and compute its MCA weights on a centre crop of ``pair.lq`` (:data:`ATTENTION_SIDE`) at up to
    :data:`ATTENTION_TAPS` of its taps (evenly spread, first and last included)."""
    job = result.cell.job
    options = DistillOptions.from_dict({**job.options, "contrastive": False})  # L_CL holds no weights
    crop = job.profile.student_train.crop
    distiller = build_distiller("skd", build_model(job.student),
                                load_checkpoint(build_model(teacher.model), teacher.weights),
                                options, torch.zeros(1, 3, crop, crop))
    state = load_file(str(runs_dir / "cells" / result.cell.id / "checkpoint" / CHECKPOINT_WEIGHTS))
    distiller.load_state_dict(state, strict=True)
    distiller.eval()
    method = distiller.method
    taps = _evenly(method.teacher_taps, ATTENTION_TAPS)
    image = centre_crop(pair.lq, ATTENTION_SIDE)
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).unsqueeze(0).float()
    with torch.no_grad(), FeatureTaps(distiller.student, taps, "student") as s_taps, \
            FeatureTaps(distiller.teacher, taps, "teacher") as t_taps:
        s_feats, t_feats = s_taps.run(x, stop_early=True)[1], t_taps.run(x, stop_early=True)[1]
        channel, queries, spatial = {}, {}, {}
        for path in taps:
            s, t = method.adapters(path, s_feats[path]), t_feats[path]
            h, w = t.shape[2:]
            points = [(min(int(fy * h), h - 1), min(int(fx * w), w - 1)) for fy, fx in QUERY_POINTS]
            weights = method.feature_loss.mca.weights(s, t, [row * w + col for row, col in points])
            channel[path] = weights["channel"][0].numpy()
            spatial[path] = weights["spatial"][0].numpy()
            queries[path] = points
    distiller.close()
    return AttentionMaps(result.cell.label, result.cell.task, result.cell.seed, job.options["mca_dims"],
                         pair.name, image, channel, queries, spatial)


def attention_figure(maps: AttentionMaps) -> Figure:
    """Per tap (a row): the channel map as a heat map, the input crop with the query tokens marked,
    and one spatial map (softmax over student tokens) per query, its query marked."""
    taps = list(maps.channel)
    n_q = len(QUERY_POINTS)
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
        for k, (ax, (y, x)) in enumerate(zip(row[2:], maps.queries[path], strict=True)):
            ax.imshow(maps.spatial[path][k], cmap="viridis", interpolation="nearest")
            ax.plot(x, y, marker="x", ms=8, color="white", mew=2)
            ax.set_title(f"spatial row, query {k + 1} ({y}, {x})", fontsize=9)
            ax.set_axis_off()
    fig.suptitle(f"Cross-net attention of {maps.label!r} ({maps.task}, seed {maps.seed}, MCA dims "
                 f"{maps.dims}) on a {side}x{side} centre crop of {maps.image_name}: teacher queries, "
                 "student keys; rows sum to 1", fontsize=9)
    return fig


def attention_plan(grid: Grid, results: Sequence[CellResult], runs_dir: Path) -> Plan:
    """The attention figure's plan (drawn from :func:`attention_cell`), or why it is not drawn."""
    title, stem = "Cross-net attention maps (channel and spatial MCA)", "attention"
    chosen = attention_cell(grid, results, runs_dir)
    if isinstance(chosen, str):
        return title, stem, Figure, chosen
    job = chosen.cell.job
    teacher = _teacher(job, results, runs_dir)
    if teacher is None:
        return title, stem, Figure, f"the teacher's weights of {job.task} are not under {runs_dir / 'teachers'}"
    pairs = load_pairs(job.profile.test_data, job.task, job.profile.layout, "test")
    wanted = grid.qualitative.images
    pair = next((p for p in pairs if p.name in wanted), pairs[0]) if wanted else pairs[0]
    return title, stem, lambda: attention_figure(attention_maps(chosen, runs_dir, teacher, pair)), ""
