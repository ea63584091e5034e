"""What every number of a report means (colour space, crop, counter, input size, device...), read
from the records themselves and stated in each table caption and study page; and how the methods'
weights were set (tuned, from the grid's manifest, or the literature/default values)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.spec.grid import REFERENCE_LABEL

from .records import GridRun
from .stats import LEVEL
from .tables import INCONCLUSIVE

#: scoring colour spaces as the records name them -> as captions state them
COLOURS = {"rgb": "RGB", "y": "Y channel (ITU-R BT.601 luma)"}


@dataclass(frozen=True)
class Conventions:
    """Scoring and measuring conventions of one grid's report."""

    profile: str
    seeds: tuple[int, ...]
    scoring: dict[str, str]  # task -> "embedded test set, RGB, crop border 0 px, centre crop <= 64 px"
    input_shape: str  # "1x3x64x64"; "" when no architecture was measured
    counter: str
    throughput: str  # "cpu (AMD EPYC), fp32, batch 1, 2 threads"
    power: str  # the study's power statement (:func:`.power.power_caption`); first in the caption
    balance: str = ""  # the loss-balance marks' rule (:func:`.balance.balance_caption`), when logged
    weights: str = ""  # how the methods' options were set (:func:`weights_text`)
    seeds_why: str = ""  # why this many seeds (the grid's report.seeds)

    def caption(self) -> str:
        """One paragraph stating every convention of the tables."""
        return " ".join(text for _, text in self.items())

    def items(self) -> list[tuple[str, str]]:
        """``(numbers, convention)`` pairs, one per kind of number in the tables, in caption order."""
        scoring = "; ".join(f"{task}: {text}" for task, text in self.scoring.items())
        macs = (f"MACs: multiply-accumulates in G (1 MAC = 2 FLOPs) of one forward pass at input "
                f"{self.input_shape}, counted by {self.counter} (convolutions, matrix and attention products)."
                if self.input_shape else "MACs: not measured (no architecture records; `skd-bench run` writes them).")
        speed = [("Throughput", f"Throughput: {self.throughput}.")] if self.throughput else []
        power = [("Power", self.power)] if self.power else []
        return [
            *power,
            ("Seeds, mean ± sd", f"Profile {self.profile}; mean ± sample standard deviation over seeds "
                                 f"({len(self.seeds)} seeds: {', '.join(map(str, self.seeds))}; "
                                 f"the Seeds column gives finished/planned)."
                                 + (f" Seeds: {self.seeds_why.strip()}" if self.seeds_why else "")),
            ("PSNR (dB), SSIM", f"PSNR (dB) and SSIM with BasicSR/MATLAB semantics (clamped to [0, 1], quantised to "
                                f"uint8, float64, peak 255; SSIM with an 11-tap Gaussian window, sigma 1.5) on "
                                f"{scoring}."),
            ("Δ PSNR, Δ SSIM", f"Δ: mean paired difference to the {REFERENCE_LABEL} student over seeds (pairs by "
                               f"seed) with its two-sided {LEVEL:.0%} Student-t confidence interval, marked "
                               f"{INCONCLUSIVE} where the interval spans zero (CSV: inconclusive_psnr, "
                               f"inconclusive_ssim; each variant's minimum detectable effect at its seed pairs: "
                               f"mde_psnr in dB, mde_ssim)."),
            ("Params (M)", "Params: the student's own, in M; distillation adapters are training overhead and "
                           "excluded."),
            ("MACs (G)", macs),
            *speed,
            ("Teacher", "Teacher: each task's reference model, the one the distilled cells used (or the grid "
                        "trained with train_teacher), on its own schedule."),
            *([("Variant [marks]", self.balance)] if self.balance else []),
            *([("Weights", self.weights)] if self.weights else []),
            ("Bold", "Bold (CSV: best_* columns): best student per column and task (highest PSNR, SSIM and Δ; "
                     "lowest params and MACs), marked only where the values differ."),
        ]


def read_conventions(grid: GridRun, cells: pd.DataFrame, arch: Mapping[str, Mapping[str, Any]],
                     power: str, balance: str = "") -> Conventions:
    """The conventions of ``grid``'s finished cells (``cells``: :func:`.records.cell_frame`) and
    architecture records ``arch``, with the study's ``power`` statement; differing values across
    records are all listed."""
    done = cells[cells["status"] == "done"]
    scoring = {}
    for task, group in done.groupby("task", sort=False):
        test = distinct_text(group, "config.test_data", str)
        colour = distinct_text(group, "metrics.color", lambda v: COLOURS.get(v, str(v).upper()))
        crop = distinct_text(group, "metrics.crop_border", lambda v: f"{int(v)} px")
        side = distinct_text(group, "metrics.max_side",
                             lambda v: f"centre crop <= {int(v)} px" if v else "whole images")
        scoring[task] = f"{test} test set, {colour}, crop border {crop}, {side}"
    first = next(iter(arch.values()), {})
    tput = first.get("throughput") or {}
    throughput = (f"{tput['device']} ({tput['device_name']}), {tput['dtype']}, batch {tput['batch']}, "
                  f"{tput['threads']} threads, median of {tput['repeats']} timed runs ({tput['timer']})"
                  if tput else "")
    shape = "x".join(map(str, first.get("input_shape", [])))
    return Conventions(grid.profile, tuple(grid.seeds), scoring, shape, first.get("counter", ""), throughput, power,
                       balance, weights_text(grid), grid.seeds_why)


def _search(trials: int, startup: int) -> str:
    """How a search of ``trials`` trials with ``startup`` random start-up trials chose its values."""
    if startup >= trials:  # TPE never modelled the history: say what it was
        return f"seeded random search (TPE's start-up trials), {trials} trials each"
    return f"TPE, {trials} trials each (the first {startup} random)"


def weights_text(grid: GridRun) -> str:
    """How the options of the grid's methods were set: tuned (trials, split, budget, from the
    provenance the manifest recorded) or the literature/default values; empty for a grid whose
    methods have no options (scratch only)."""
    methods = list(dict.fromkeys(c.method for c in grid.cells if c.options))
    if not methods:
        return ""
    tuned = [m for m in methods if m in grid.tuning and any(c.tuned for c in grid.cells if c.method == m)]
    if not tuned:
        return "Weights: literature/default weights, untuned."
    groups: dict[tuple[Any, ...], list[str]] = {}
    for m in tuned:
        p = grid.tuning[m]
        groups.setdefault((p["trials"], p["startup_trials"], p["val_images"], p["budget"]["steps"], p["task"]),
                          []).append(m)
    parts = [f"{', '.join(ms)} tuned by {_search(trials, startup)} on the "
             f"validation split ({crops} crops) of {task}, budget {steps} steps"
             for (trials, startup, crops, steps, task), ms in groups.items()]
    untuned = [m for m in methods if m not in tuned]
    if untuned:
        parts.append(f"{', '.join(untuned)}: literature/default weights, untuned")
    replaced = any(len(c.tuned) < len(grid.tuning[c.method]["options"]) for c in grid.cells if c.method in tuned)
    note = " A cell's own options replace the tuned ones." if replaced else ""
    return f"Weights: methods {'; '.join(parts)}.{note}"


def distinct_text(frame: pd.DataFrame, column: str, fmt: Any) -> str:
    """The distinct values of ``frame[column]`` through ``fmt``, joined by `` / ``; ``unknown`` when none."""
    values = frame[column].dropna().unique() if column in frame else []
    return " / ".join(fmt(v) for v in values) or "unknown"
