"""Statistical power of a study's paired comparisons to the scratch student: the minimum detectable
effect (MDE) and the seeds a target effect needs.

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
from functools import cache

from statsmodels.stats.power import TTestPower

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
