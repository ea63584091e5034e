"""``skd-bench report``: statistics by hand, best marking, unfinished cells, every output file.

Records and the grid's manifest are written synthetically (through :class:`bench.store.RunStore`)
for a tiny grid, so nothing trains here.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.execute.cells import cells_of
from bench.execute.manifest import manifest
from bench.report import build_report, write_index
from bench.report.power import minimum_detectable_effect
from bench.report.stats import best_flags, paired_difference, pareto_front, t_interval
from bench.spec.grid import Grid, load_grid
from bench.store import RunStore
from skd_core.atomic import atomic_write_json
from skd_core.errors import SkdError

T_975_DF2 = 4.302652729911275  # Student t quantile 0.975 at 2 degrees of freedom (tables)
GRID = """\
study: tiny
description: Tiny synthetic grid.
profile: smoke
tasks: [denoise25]
seeds: [0, 1, 2]
base: {method: skd}
axes: {options.mca_dims: [none, both]}
"""
#: (label, seed) -> PSNR (dB); a missing key is a cell that never ran
PSNR = {("scratch", 0): 20.0, ("scratch", 1): 21.0, ("scratch", 2): 22.5,
        ("mca_dims=none", 0): 20.5, ("mca_dims=none", 1): 22.0, ("mca_dims=none", 2): 22.75,
        ("mca_dims=both", 0): 21.0}
FAILED = ("mca_dims=both", 2)
TEACHER_ID = "teacherid0000000"
PROVENANCE = {"git": {"commit": "deadbeef", "branch": "main", "dirty": False},
              "versions": {"torch": "2.13.0"}, "machine": {"node": "box", "processor": "cpu0", "cpu_count": 2}}


def _metrics(psnr: float) -> dict:
    return {"psnr": psnr, "ssim": psnr / 100, "input_psnr": 18.0, "input_ssim": 0.1, "color": "rgb",
            "crop_border": 0, "max_side": 64, "per_image": [{"name": "a", "psnr": psnr, "ssim": psnr / 100}]}


def _history(scale: float) -> list[dict]:
    return [{"step": 1, "loss": 0.3 * scale, "pixel_l1": 0.2, "lr": 1e-3}, {"step": 2, "loss": 0.2 * scale,
            "pixel_l1": 0.1, "lr": 1e-4}, {"step": 2, "val_psnr": 19.0 + scale}]


def _arch(model: str, params: int, macs: int, ms: float) -> dict:
    return {"model": model, "params": params, "macs": macs, "conv_macs": macs, "input_shape": [1, 3, 64, 64],
            "counter": "test counter", "throughput": {"device": "cpu", "device_name": "cpu0", "dtype": "fp32",
                                                       "batch": 1, "threads": 2, "repeats": 10, "timer": "perf",
                                                       "ms_per_image": ms, "images_per_s": 1000 / ms}}


def write_records(grid: Grid, runs: Path) -> None:
    """Records of ``grid``'s cells per :data:`PSNR` and :data:`FAILED`, its teacher, two archs and
    the manifest a runner would write."""
    cells = cells_of(grid)
    RunStore(runs).write_manifest(grid.study, grid.run_key(),
                                  manifest(grid, cells, {"student-smoke": "a1", "teacher-smoke": "a2"}))
    for cell in cells:
        key, folder = (cell.label, cell.seed), runs / "cells" / cell.id
        base = {"id": cell.id, "kind": "student", "config": cell.job.config(), "provenance": PROVENANCE,
                "finished": 1.7e9}
        if key == FAILED:
            atomic_write_json(folder / "record.json", {**base, "status": "failed", "error": "ValueError: boom",
                                                       "traceback": "Traceback..."})
        elif key in PSNR:
            distilled = cell.label != "scratch"
            atomic_write_json(folder / "record.json", {
                **base, "status": "done", "model": cell.job.student, "params": 56073,
                "adapter_params": 3672 if distilled else 0, "metrics": _metrics(PSNR[key]),
                "teacher": {"id": TEACHER_ID, "metrics": _metrics(24.0)} if distilled else None,
                "training": {"seconds": 1.0, "steps": 2, "history": _history(1 + cell.seed), "resumed_from": 0},
                "eval_seconds": 0.1})
    atomic_write_json(runs / "teachers" / TEACHER_ID / "record.json", {
        "id": TEACHER_ID, "kind": "teacher", "status": "done", "model": "teacher-smoke", "params": 262301,
        "metrics": _metrics(24.0), "provenance": PROVENANCE, "finished": 1.7e9})
    atomic_write_json(runs / "arch" / "a1" / "record.json", _arch("student-smoke", 56073, 26_000_000, 50.0))
    atomic_write_json(runs / "arch" / "a2" / "record.json", _arch("teacher-smoke", 262301, 90_000_000, 100.0))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Grid, Path]:
    """The tiny grid's report, built once: ``(grid, results folder)``."""
    root = tmp_path_factory.mktemp("report")
    (root / "tiny.yaml").write_text(GRID)
    grid = load_grid(root / "tiny.yaml")
    write_records(grid, root / "runs")
    build_report(grid, root / "runs", root / "results", caption="full")  # every convention, tested below
    write_index(root / "results")
    return grid, root / "results"


def test_paired_interval_equals_hand_computation(report: tuple[Grid, Path]) -> None:
    diffs = [PSNR[("mca_dims=none", s)] - PSNR[("scratch", s)] for s in (0, 1, 2)]
    mean, half = statistics.mean(diffs), T_975_DF2 * statistics.stdev(diffs) / math.sqrt(3)
    row = pd.read_csv(report[1] / "tiny" / "tables" / "summary.csv").set_index("label").loc["mca_dims=none"]
    assert row["d_psnr"] == pytest.approx(mean, rel=1e-5)
    assert (row["d_psnr_low"], row["d_psnr_high"]) == pytest.approx((mean - half, mean + half), rel=1e-5)
    assert row["n_pairs"] == 3


def test_power_and_inconclusive_marks(report: tuple[Grid, Path]) -> None:
    tables = report[1] / "tiny" / "tables"
    sd = statistics.stdev(PSNR[("mca_dims=none", s)] - PSNR[("scratch", s)] for s in (0, 1, 2))
    mde = minimum_detectable_effect(3, sd)  # only mca_dims=none has two pairs or more: its SD is the pooled one
    power = (f"Power (Δ PSNR, denoise25): 3 seeds x 1 test image; pooled SD of the paired differences {sd:.2f} dB "
             f"(2 degrees of freedom, 1 variant); minimum detectable effect {mde:.2f} dB (paired t test, two-sided, "
             "alpha 0.05, power 0.8)")
    markdown = (tables / "summary.md").read_text()
    assert power in markdown and "The 0.2 dB target is not reached" in markdown
    assert "| +0.58 [-0.37, +1.53] (inconclusive) (tie) " in markdown and "+1.00 (n=1) (tie) " in markdown
    tex = (tables / "summary.tex").read_text()
    assert r"\caption{Power ($\Delta$ PSNR" in tex and "& +0.58 [-0.37, +1.53] (inconclusive) (tie) &" in tex
    csv = pd.read_csv(tables / "summary.csv", dtype=str, keep_default_na=False).set_index("label")
    assert csv["inconclusive_psnr"].to_dict() == {"teacher (teacher-smoke)": "", "mca_dims=none": "True",
                                                  "mca_dims=both": "", "scratch": ""}
    assert float(csv.loc["mca_dims=none", "mde_psnr"]) == pytest.approx(mde, rel=1e-5)
    assert float(csv.loc["scratch", "power_mde_psnr"]) == pytest.approx(mde, rel=1e-5)
    assert csv.loc["scratch", "n_images"] == "1" and csv.loc["scratch", "power_seeds_for_0.15dB"] == ">50"


def test_pairs_by_seed_not_by_order() -> None:
    values = pd.Series([5.0, 1.0, 3.0], index=[2, 0, 1])
    reference = pd.Series([0.0, 1.0, 2.0], index=[0, 1, 2])  # seed 3 unpaired below
    d = paired_difference(values, pd.concat([reference, pd.Series([9.0], index=[3])]))
    assert d["n"] == 3 and d["mean"] == pytest.approx((1 + 2 + 3) / 3)


def test_t_interval_needs_two_values() -> None:
    mean, low, high = t_interval([1.5])
    assert mean == 1.5 and math.isnan(low) and math.isnan(high)


def test_best_per_column_ties_and_no_choice() -> None:
    summary = pd.DataFrame({"task": ["a", "a", "a", "b", "b"], "psnr_mean": [30.001, 29.0, 30.004, 1.0, 1.0],
                            "params_M": [2.0, 1.0, 3.0, 5.0, 4.0]})
    flags = best_flags(summary)
    assert flags["best_psnr_mean"].tolist() == [True, False, True, False, False]  # equal at 2 decimals; b all equal
    assert flags["best_params_M"].tolist() == [False, True, False, False, True]


def test_pareto_front() -> None:
    mask = pareto_front([1.0, 2.0, 2.0, 3.0, float("nan")], [10.0, 9.0, 12.0, 12.0, 20.0])
    assert mask.tolist() == [True, False, True, False, False]


def test_markdown_table_rows_and_bold(report: tuple[Grid, Path]) -> None:
    text = (report[1] / "tiny" / "tables" / "summary.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| denoise25")]
    assert [r.split("|")[2].strip() for r in rows] == ["teacher (teacher-smoke)", "mca_dims=none", "mca_dims=both",
                                                       "scratch"]
    cells = {r.split("|")[2].strip(): [c.strip() for c in r.split("|")[3:-1]] for r in rows}
    assert cells["mca_dims=none"][0] == "3/3" and cells["mca_dims=both"][0] == "1/3"
    # highest mean PSNR and largest Δ, but within the study's MDE (1.25 dB) of the others: a tie, not bold
    assert cells["mca_dims=none"][1] == "21.75 ± 1.15 (tie)" and cells["scratch"][1] == "21.17 ± 1.26 (tie)"
    assert cells["mca_dims=none"][2] == "**0.2175 ± 0.0115**"  # SSIM has no study MDE: the best is bold
    assert cells["scratch"][3] == "(reference)"
    assert cells["mca_dims=both"][3] == "+1.00 (n=1) (tie)"  # one pair: no interval
    assert cells["mca_dims=none"][5:] == ["0.05607", "0.026"]  # equal for all students: not bold
    assert "crop border 0 px" in text and "test counter" in text and "1x3x64x64" in text
    assert "Weights: literature/default weights, untuned." in text  # the smoke profile has no tuned file
    csv = pd.read_csv(report[1] / "tiny" / "tables" / "summary.csv").set_index("label")
    assert csv["best_ssim_mean"].to_dict() == {"teacher (teacher-smoke)": False, "mca_dims=none": True,
                                               "mca_dims=both": False, "scratch": False}
    assert not csv["best_psnr_mean"].any() and csv["tie_psnr_mean"].to_dict() == {
        "teacher (teacher-smoke)": False, "mca_dims=none": True, "mca_dims=both": True, "scratch": True}
    tex = (report[1] / "tiny" / "tables" / "summary.tex").read_text()
    assert r"\toprule" in tex and r"\textbf{0.2175 $\pm$ 0.0115}" in tex and r"mca\_dims=none" in tex
    assert r"21.75 $\pm$ 1.15 (tie)" in tex


def test_missing_and_failed_cells_reported(report: tuple[Grid, Path]) -> None:
    grid, results = report
    page = (results / "tiny" / "README.md").read_text()
    section = page.split("## Cells not finished")[1].split("## Run info")[0]
    unfinished = [c for c in cells_of(grid) if (c.label, c.seed) not in PSNR]
    assert len(unfinished) == 2
    for cell in unfinished:
        assert cell.id in section
    assert "failed" in section and "ValueError: boom" in section and "pending" in section
    records = pd.read_csv(results / "tiny" / "records.csv")
    assert len(records) == len(grid.cells)
    assert records.set_index("id").loc[unfinished[0].id, "status"] in ("pending", "failed")
    assert "traceback" not in records


def test_every_output_file(report: tuple[Grid, Path]) -> None:
    _, results = report
    study = results / "tiny"
    for name in ("README.md", "records.csv", *(f"tables/summary.{x}" for x in ("md", "tex", "csv")),
                 *(f"figures/{f}.{x}" for f in ("ablation", "training", "speedup") for x in ("png", "svg"))):
        assert (study / name).is_file(), name
    assert not list(study.glob("tables/paper_layout.*"))  # one task: the summary table has that shape
    assert not list(study.glob("figures/pareto.*"))  # every student is student-smoke: one x, no trade-off
    for png in study.glob("figures/*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    page = (study / "README.md").read_text()
    for link in ("tables/summary.tex", "figures/ablation.png", "figures/speedup.svg", "records.csv"):
        assert f"]({link})" in page
    assert "not drawn: PSNR vs MACs and params per task" in page and "same MACs and params" in page
    assert "deadbeef" in page and "torch 2.13.0" in page
    index = (results / "README.md").read_text()
    assert "](tiny/README.md)" in index and "](tiny/figures/training.png)" in index
    assert not list(results.rglob(".*.tmp"))


def test_index_accumulates_studies(report: tuple[Grid, Path]) -> None:
    _, results = report
    other = results / "other"
    other.mkdir(exist_ok=True)
    (other / "README.md").write_text("# other\n\nAnother study.\n")
    try:
        index = write_index(results).read_text()
        assert "](tiny/README.md)" in index and "](other/README.md)" in index and "Another study." in index
    finally:
        (other / "README.md").unlink()
        other.rmdir()
        write_index(results)


def test_index_shows_the_hand_written_notes_first_and_keeps_them(report: tuple[Grid, Path]) -> None:
    _, results = report
    notes = results / "NOTES.md"
    notes.write_text("## Findings\n\nThe ratio form pulled against reconstruction.\n")
    try:
        index = write_index(results).read_text()
        assert index.index("The ratio form pulled") < index.index("](tiny/README.md)")
        assert "NOTES.md" not in index  # shown inline, not listed again among the other pages
        assert notes.read_text().startswith("## Findings")  # the rebuild never touches it
    finally:
        notes.unlink()
        write_index(results)


def test_grid_without_finished_cell_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(GRID)
    grid = load_grid(tmp_path / "tiny.yaml")
    with pytest.raises(SkdError, match=r"'tiny'.*has not been run under.*skd-bench run"):
        build_report(grid, tmp_path / "runs", tmp_path / "results")
    RunStore(tmp_path / "runs").write_manifest(grid.study, grid.run_key(), manifest(grid, cells_of(grid)))
    with pytest.raises(SkdError, match=r"'tiny'.*has no finished cell.*skd-bench run"):
        build_report(grid, tmp_path / "runs", tmp_path / "results")


def test_cli(report: tuple[Grid, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid, _ = report
    runs = grid.path.parent / "runs"
    assert main(["report", str(grid.path), "--runs-dir", str(runs), "--out", str(tmp_path), "--json"]) == 0
    pages = json.loads(capsys.readouterr().out)
    assert [p["grid"] for p in pages] == ["tiny", "(index)"] and (tmp_path / "tiny" / "README.md").is_file()


def test_report_command_runs_without_the_training_stack(report: tuple[Grid, Path], tmp_path: Path) -> None:
    """``skd-bench report`` on a finished runs folder, in a fresh interpreter: neither torch nor a
    method nor the runner is imported."""
    grid, _ = report
    argv = ["report", str(grid.path), "--runs-dir", str(grid.path.parent / "runs"), "--out", str(tmp_path)]
    code = ("import sys\nfrom bench.cli import main\n"
            f"assert main({argv!r}) == 0\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('torch', 'skd_core.methods', 'skd_core.models', "
            "'skd_core.train.runs', 'bench.execute')))\nassert not bad, bad\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "tiny" / "README.md").is_file()
