"""Statistical power of a study (``bench/report/power.py``): the minimum detectable effect against a
noncentral-t hand computation, seeds needed, the pooled SD, the inconclusive marks and the power
caption in the rendered tables. Small frames built by hand; nothing trains."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from statsmodels.stats.power import TTestPower

from bench.report.conventions import Conventions
from bench.report.power import (
    MAX_SEEDS,
    minimum_detectable_effect,
    pooled_sd,
    power_caption,
    seeds_needed,
    study_power,
    with_power_columns,
)
from bench.report.stats import summarise
from bench.report.tables import INCONCLUSIVE, csv_table, latex_table, markdown_table, table_frame
from bench.spec.grid import load_grid
from skd_core.errors import ConfigError

TEACHERS = pd.DataFrame(columns=["task", "id", "model", "psnr", "ssim", "params", "macs_G"])


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


def cells(diffs: dict[str, list[float]], images: int = 14) -> pd.DataFrame:
    """A cell frame: scratch at 30 dB + seed, each variant at scratch + its per-seed difference (dB);
    a NaN difference is a cell not run."""
    seeds = range(len(next(iter(diffs.values()))))
    rows = [{"label": label, "seed": s, "status": "pending" if math.isnan(d) else "done",
             "metrics.psnr": 30.0 + s + d, "metrics.ssim": 0.8 + d / 100}
            for label, ds in {**diffs, "scratch": [0.0] * len(seeds)}.items() for s, d in zip(seeds, ds, strict=True)]
    return pd.DataFrame(rows).assign(task="denoise25", student="student-smoke", params=56073, adapter_params=0,
                                     **{"metrics.n_images": images})


def read_csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False).set_index("label")


def test_inconclusive_marked_when_interval_spans_zero() -> None:
    summary = summarise(cells({"clear": [0.5, 0.6, 0.55], "unclear": [-0.3, 0.4, 0.1]}))
    rows = summary.set_index("label")
    assert rows.loc["clear", "d_psnr_low"] > 0 and rows.loc["unclear", "d_psnr_low"] < 0 < rows.loc["unclear",
                                                                                                    "d_psnr_high"]
    assert rows["inconclusive_psnr"].tolist() == [False, True, pd.NA]  # scratch: no interval
    assert rows["inconclusive_ssim"].tolist() == [False, True, pd.NA]
    assert rows.loc["unclear", "mde_psnr"] == pytest.approx(hand_mde(3, float(np.std([-0.3, 0.4, 0.1], ddof=1))),
                                                            rel=1e-6)
    table = table_frame(summary.assign(macs_G=0.026), TEACHERS)
    for text in (markdown_table(table, "caption", "title"), latex_table(table, "caption", "t")):
        lines = {label: line for line in text.splitlines() for label in ("clear", "unclear", "scratch")
                 if f"| {label} " in line or f"& {label} &" in line}
        assert lines["unclear"].count(INCONCLUSIVE) == 2  # Δ PSNR and Δ SSIM
        assert INCONCLUSIVE not in lines["clear"] and INCONCLUSIVE not in lines["scratch"]
    csv = read_csv(csv_table(table))
    assert csv["inconclusive_psnr"].tolist() == csv["inconclusive_ssim"].tolist() == ["False", "True", ""]


def test_power_caption_in_markdown_and_latex() -> None:
    diffs = {"a": [0.1, 0.4, 0.2], "b": [0.0, 0.3, -0.2]}
    summary = summarise(cells(diffs))
    (power,) = study_power(summary)
    sd = math.sqrt(sum(np.var(d, ddof=1) * 2 for d in diffs.values()) / 4)
    assert (power.seeds, power.images, power.df, power.variants) == (3, 14, 4, 2)
    assert power.sd == pytest.approx(sd) and power.mde == pytest.approx(hand_mde(3, sd), rel=1e-6)
    assert power.needed == {0.15: seeds_needed(0.15, sd), 0.2: seeds_needed(0.2, sd)}
    caption = power_caption([power])
    expected = (f"Power (Δ PSNR, denoise25): 3 seeds x 14 test images; pooled SD of the paired differences "
                f"{sd:.2f} dB (4 degrees of freedom, 2 variants); minimum detectable effect {power.mde:.2f} dB "
                f"(paired t test, two-sided, alpha 0.05, power 0.8); 0.15 dB would need {power.needed[0.15]} seeds, "
                f"0.2 dB would need {power.needed[0.2]} seeds. The 0.2 dB target is not reached: the minimum "
                f"detectable effect is above 0.2 dB because 3 seeds are too few for a pooled SD of {sd:.2f} dB.")
    assert caption == expected
    conventions = Conventions("smoke", (0, 1, 2), {"denoise25": "RGB"}, "", "", "", caption)
    table = table_frame(with_power_columns(summary.assign(macs_G=0.026), [power]), TEACHERS)
    markdown = markdown_table(table, conventions.caption(), "title")
    assert markdown.split("\n\n")[2].startswith(expected)  # the paragraph right under the table
    latex = latex_table(table, conventions.caption(), "t")
    assert r"\caption{Power ($\Delta$ PSNR, denoise25): 3 seeds x 14 test images; pooled SD" in latex
    assert f"minimum detectable effect {power.mde:.2f} dB (paired t test, two-sided, alpha 0.05, power 0.8)" in latex
    csv = read_csv(csv_table(table))
    assert csv["power_mde_psnr"].astype(float).tolist() == pytest.approx([power.mde] * 3, rel=1e-5)
    assert csv["power_seeds_for_0.15dB"].tolist() == [str(power.needed[0.15])] * 3


def test_caption_names_wide_variants_when_the_study_mde_is_below_target() -> None:
    rng = np.random.default_rng(0)
    tight = rng.normal(0.3, 0.02, 10)
    summary = summarise(cells({"tight": list(tight), "loose": [0.2, -0.3, *[math.nan] * 8]}))
    (power,) = study_power(summary)
    assert power.mde <= 0.2 and list(power.wide) == ["loose"]
    sentence, loose = power.sentence(), power.wide["loose"]
    assert "The 0.2 dB target is not reached for every variant" in sentence
    assert f"loose (±{loose.half:.2f} dB: SD {loose.sd:.2f} dB over 2 seed pairs)" in sentence


def test_power_not_estimable_with_one_seed() -> None:
    (power,) = study_power(summarise(cells({"a": [0.3]}, images=1)))
    assert power.df == 0 and power.needed == {}
    assert power.sentence().startswith("Power (Δ PSNR, denoise25): 1 seed x 1 test image; not estimable")
    assert power.columns()["power_seeds_for_0.2dB"] is None


def test_more_than_the_cap_is_said_in_words_and_in_the_csv() -> None:
    (power,) = study_power(summarise(cells({"a": [0.0, 2.0, -1.0]})))
    assert power.needed[0.15] is None
    assert f"0.15 dB would need more than {MAX_SEEDS} seeds" in power.sentence()
    assert power.columns()["power_seeds_for_0.15dB"] == f">{MAX_SEEDS}"


def test_a_grids_reason_for_its_seeds_is_in_the_caption_and_not_in_its_run_key(tmp_path: Path):
    spec = tmp_path / "g.yaml"
    base = "study: g\nprofile: smoke\ntasks: [denoise25]\nseeds: [0, 1, 2, 3, 4]\nbase: {method: scratch}\n"
    spec.write_text(base)
    key = load_grid(spec).run_key()
    spec.write_text(base + "report:\n  seeds: five, from the measured SD of 0.2 dB\n")
    grid = load_grid(spec)
    assert grid.seeds_why == "five, from the measured SD of 0.2 dB" and grid.run_key() == key
    caption = Conventions("smoke", (0, 1, 2, 3, 4), {}, "", "", "", "", seeds_why=grid.seeds_why).caption()
    assert "(5 seeds: 0, 1, 2, 3, 4; the Seeds column gives finished/planned). Seeds: five, from the measured" \
        in caption
    spec.write_text(base + "report:\n  seeds: [5]\n")
    with pytest.raises(ConfigError, match="seeds"):
        load_grid(spec)
