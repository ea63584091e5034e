"""Statistical power of a study's paired comparisons to the scratch student: the minimum detectable
effect (MDE) of each variant and of the study, and the seeds a target effect needs.

Convention throughout: a **paired t test** (one-sample t test of the per-seed differences),
**two-sided**, significance level :data:`ALPHA` = 0.05, power :data:`POWER` = 0.8, solved by
``statsmodels.stats.power.TTestPower``. ``n`` is the number of seed pairs and ``s`` the sample
standard deviation (``ddof=1``) of the per-seed differences (dB for PSNR); the MDE is the smallest
true mean difference the test detects with that power: ``d(n) * s`` with ``d`` the standardised
effect size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import pandas as pd
from statsmodels.stats.power import TTestPower

from bench.spec.grid import REFERENCE_LABEL

ALPHA = 0.05
POWER = 0.8
#: Δ PSNR (dB) the seeds-needed figures are given for; the last one is the study's target
TARGETS_DB = (0.15, 0.2)
TARGET_DB = TARGETS_DB[-1]
#: largest seed count :func:`seeds_needed` reports; beyond it, ">50"
MAX_SEEDS = 50


@cache
def detectable_effect_size(n: int) -> float:
    """Standardised MDE ``d`` (in units of ``s``) of a two-sided paired t test on ``n`` pairs at
    alpha 0.05 and power 0.8; NaN below two pairs."""
    if n < 2:
        return math.nan
    return float(TTestPower().solve_power(nobs=n, alpha=ALPHA, power=POWER, alternative="two-sided"))


def minimum_detectable_effect(n: int, sd: float) -> float:
    """MDE of a two-sided paired t test (alpha 0.05, power 0.8) on ``n`` pairs whose differences
    have sample SD ``sd`` (ddof=1), in ``sd``'s unit (dB for PSNR); NaN below two pairs or
    without ``sd``."""
    return detectable_effect_size(n) * sd


def seeds_needed(target: float, sd: float, cap: int = MAX_SEEDS) -> int | None:
    """Seed pairs a two-sided paired t test (alpha 0.05, power 0.8) needs to detect a true mean
    difference ``target`` when the differences have sample SD ``sd`` (ddof=1; same unit, dB for
    PSNR); None when more than ``cap`` are needed.

    This is ``TTestPower().solve_power(effect_size=target / sd, ...)`` rounded up (the smallest
    ``n`` with power >= 0.8), found as the smallest ``n`` whose MDE is at most ``target``: statsmodels'
    solve for ``nobs`` returns NaN (with a ConvergenceWarning) for large effect sizes."""
    if not (sd >= 0 and target > 0):
        raise ValueError(f"seeds_needed needs sd >= 0 and target > 0, got sd={sd}, target={target}")
    if minimum_detectable_effect(cap, sd) > target:
        return None
    low, high = 2, cap
    while low < high:  # the MDE decreases with n
        mid = (low + high) // 2
        low, high = (low, mid) if minimum_detectable_effect(mid, sd) <= target else (mid + 1, high)
    return low


def pooled_sd(sds: Sequence[float], pairs: Sequence[int]) -> tuple[float, int]:
    """``(sd, df)``: the SD of paired differences pooled over variants, ``sqrt(sum((n_i - 1) s_i^2) /
    sum(n_i - 1))`` with ``df = sum(n_i - 1)`` degrees of freedom; variants with fewer than two pairs
    or no SD are left out; ``(NaN, 0)`` when none is left."""
    kept = [(s, n - 1) for s, n in zip(sds, pairs, strict=True) if n >= 2 and not math.isnan(s)]
    df = sum(d for _, d in kept)
    return (math.sqrt(sum(d * s * s for s, d in kept) / df), df) if df else (math.nan, 0)


@dataclass(frozen=True)
class Wide:
    """A variant whose 95% interval of Δ PSNR is wider than ±:data:`TARGET_DB`: its half-width and
    the SD (both dB) and number of its paired differences."""

    half: float
    sd: float
    pairs: int


@dataclass(frozen=True)
class StudyPower:
    """Power of one task of a study for Δ PSNR: ``seeds`` planned, ``images`` test images per cell
    (0 when unknown), ``sd`` (dB) pooled over ``variants`` with ``df`` degrees of freedom (0: not
    estimable), ``mde`` (dB) at ``seeds`` pairs, ``needed``: target (dB) -> seeds (None: more than
    :data:`MAX_SEEDS`; empty when not estimable) and the ``wide`` variants by label."""

    task: str
    seeds: int
    images: int
    variants: int
    sd: float
    df: int
    mde: float
    needed: dict[float, int | None]
    wide: dict[str, Wide]

    def sentence(self) -> str:
        """The caption's statement (one or two sentences), every number with its unit."""
        images = f" x {_plural(self.images, 'test image')}" if self.images else ""
        head = f"Power (Δ PSNR, {self.task}): {_plural(self.seeds, 'seed')}{images}; "
        if not self.df:
            return (head + "not estimable: no variant has two seeds paired with the scratch student, so the SD of "
                    f"the paired differences and the minimum detectable effect are unknown (the {TARGET_DB:g} dB "
                    "target is not shown to be reached).")
        needs = ", ".join(f"{t:g} dB would need {f'more than {MAX_SEEDS}' if n is None else n} seeds"
                          for t, n in self.needed.items())
        text = (head + f"pooled SD of the paired differences {self.sd:.2f} dB ({self.df} degrees of freedom, "
                f"{_plural(self.variants, 'variant')}); minimum detectable effect {self.mde:.2f} dB "
                f"(paired t test, two-sided, alpha {ALPHA:g}, power {POWER:g}); {needs}.")
        if self.mde > TARGET_DB:
            text += (f" The {TARGET_DB:g} dB target is not reached: the minimum detectable effect is above "
                     f"{TARGET_DB:g} dB because {self.seeds} seeds are too few for a pooled SD of {self.sd:.2f} dB.")
        elif self.wide:
            rows = ", ".join(f"{label} (±{w.half:.2f} dB: SD {w.sd:.2f} dB over {_plural(w.pairs, 'seed pair')})"
                             for label, w in self.wide.items())
            text += (f" The {TARGET_DB:g} dB target is not reached for every variant: the 95% CI half-width is "
                     f"above {TARGET_DB:g} dB, and so is the minimum detectable effect, for {rows}.")
        return text

    def columns(self) -> dict[str, object]:
        """The CSV's study-level columns (repeated on each student row of the task): ``power_seeds``,
        ``power_sd_psnr`` (dB), ``power_df``, ``power_mde_psnr`` (dB) and ``power_seeds_for_<t>dB``
        (text: a count, or ">50"; empty when not estimable)."""
        return {"power_seeds": self.seeds, "power_sd_psnr": self.sd, "power_df": self.df,
                "power_mde_psnr": self.mde,
                **{f"power_seeds_for_{t:g}dB": _count(self.needed[t]) if t in self.needed else None
                   for t in TARGETS_DB}}


def study_power(summary: pd.DataFrame, reference: str = REFERENCE_LABEL) -> list[StudyPower]:
    """Per task of ``summary`` (:func:`.stats.summarise`), the power of its Δ PSNR: the SD pooled
    over its variants (not ``reference``), the MDE at its planned seed count (``n_cells``) and the
    seeds :data:`TARGETS_DB` need."""
    out = []
    for task, group in summary.groupby("task", sort=False):
        variants = group[group["label"] != reference]
        sds, pairs = variants["d_psnr_sd"].astype(float), variants["n_pairs"].astype(int)
        sd, df = pooled_sd(sds.tolist(), pairs.tolist())
        seeds = int(group["n_cells"].max())
        half = (variants["d_psnr_high"] - variants["d_psnr_low"]) / 2
        wide = {label: Wide(h, s, n) for label, h, s, n in zip(variants["label"], half, sds, pairs, strict=True)
                if h > TARGET_DB}
        images = group["n_images"].max() if "n_images" in group else math.nan
        out.append(StudyPower(str(task), seeds, 0 if math.isnan(images) else int(images), int((pairs >= 2).sum()),
                              sd, df, minimum_detectable_effect(seeds, sd),
                              {t: seeds_needed(t, sd) for t in TARGETS_DB} if df else {}, wide))
    return out


def power_caption(powers: Sequence[StudyPower]) -> str:
    """The power statements of a study's tasks, one sentence (or two) each."""
    return " ".join(p.sentence() for p in powers)


def with_power_columns(summary: pd.DataFrame, powers: Sequence[StudyPower]) -> pd.DataFrame:
    """``summary`` plus the study-level columns (:meth:`StudyPower.columns`) on each row of their task."""
    by_task = {p.task: p.columns() for p in powers}
    extra = pd.DataFrame([by_task.get(str(t), {}) for t in summary["task"]], index=summary.index)
    return pd.concat([summary, extra], axis=1)


def _count(n: int | None) -> str:
    return f">{MAX_SEEDS}" if n is None else str(n)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"
