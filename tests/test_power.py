"""Statistical power of a study (``bench/report/power.py``): the minimum detectable effect against a
noncentral-t hand computation, seeds needed and the pooled SD."""

from __future__ import annotations

import math

import pytest
from scipy import optimize, stats
from statsmodels.stats.power import TTestPower

from bench.report.power import minimum_detectable_effect, pooled_sd, seeds_needed


def hand_mde(n: int, sd: float) -> float:
    """MDE by hand: the ``d`` at which a two-sided one-sample t test on ``n`` values (alpha 0.05)
    has power 0.8, from the noncentral t (noncentrality ``d sqrt(n)``), times ``sd``."""
    df, crit = n - 1, stats.t.ppf(0.975, n - 1)

    def power(d: float) -> float:  # the lower tail by symmetry: P(T_nc < -c) = P(T_-nc > c)
        return stats.nct.sf(crit, df, d * math.sqrt(n)) + stats.nct.sf(crit, df, -d * math.sqrt(n))

    return optimize.brentq(lambda d: power(d) - 0.8, 0.1, 20, xtol=1e-14, rtol=1e-14) * sd


@pytest.mark.parametrize("n", [3, 5])
def test_mde_equals_noncentral_t_hand_computation(n: int) -> None:
    assert minimum_detectable_effect(n, 0.21) == pytest.approx(hand_mde(n, 0.21), rel=1e-6)


def test_mde_needs_two_pairs() -> None:
    assert math.isnan(minimum_detectable_effect(1, 0.2)) and math.isnan(minimum_detectable_effect(3, math.nan))


@pytest.mark.parametrize(("target", "sd"), [(0.15, 0.21), (0.2, 0.21), (0.15, 0.05), (0.2, 0.4)])
def test_seeds_needed_is_solve_power_rounded_up(target: float, sd: float) -> None:
    n = seeds_needed(target, sd)
    assert n == math.ceil(TTestPower().solve_power(effect_size=target / sd, alpha=0.05, power=0.8))
    assert minimum_detectable_effect(n, sd) <= target < minimum_detectable_effect(n - 1, sd) or n == 2


def test_seeds_needed_cap_and_tiny_sd() -> None:
    assert seeds_needed(0.15, 1.0) is None  # about 350 pairs: beyond the cap
    assert seeds_needed(0.15, 1.0, cap=400) == math.ceil(TTestPower().solve_power(effect_size=0.15, alpha=0.05,
                                                                                 power=0.8))
    assert seeds_needed(0.15, 0.01) == 2  # effect size 15: statsmodels' nobs solve gives NaN here
    assert seeds_needed(0.2, 0.0) == 2
    with pytest.raises(ValueError, match="sd >= 0"):
        seeds_needed(0.2, math.nan)


def test_pooled_sd_weights_by_degrees_of_freedom() -> None:
    sd, df = pooled_sd([0.1, 0.3, 5.0, math.nan], [3, 5, 1, 0])  # the last two have no SD
    assert df == 6 and sd == pytest.approx(math.sqrt((2 * 0.1**2 + 4 * 0.3**2) / 6))
    assert math.isnan(pooled_sd([math.nan], [1])[0]) and pooled_sd([math.nan], [1])[1] == 0
