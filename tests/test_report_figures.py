"""Figures fit for a paper: the Pareto plot only where the students' costs differ, one row of
panels per task with 95% error bars and the legend outside; the budget curves with their seeds,
intervals and unfinished points; one colour per variant and per loss term in every figure; a
vector twin of every figure; short and full captions. From hand-made frames and the synthetic
records of :mod:`test_report` (nothing trains here)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from test_report import GRID, write_records

from bench.cli import main
from bench.report import balance, build_report, figures
from bench.report.budget import STEPS_COLUMN, budget_frame
from bench.report.colours import METHOD_COLOURS, TERM_COLOURS, label_colours, term_colours
from bench.spec.grid import load_grid
from skd_core.errors import ConfigError

TASKS = ("derain", "deblur", "denoise25")
BASE = {"derain": 36.0, "deblur": 31.0, "denoise25": 29.0}  # far apart: one shared PSNR axis would flatten them


def _table(students: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """A summary table (:func:`.tables.table_frame` shape) per task: the teacher, then ``label ->
    (macs_G, params_M)`` students 0.1 dB apart, each with a ± 0.2 dB interval."""
    rows = []
    for task in TASKS:
        rows.append({"role": "teacher", "task": task, "label": "teacher (t)", "psnr_mean": BASE[task] + 2,
                     "psnr_low": math.nan, "psnr_high": math.nan, "macs_G": 9.0, "params_M": 2.0})
        for i, (label, (macs, params)) in enumerate(students.items()):
            psnr = BASE[task] + 0.1 * i
            rows.append({"role": "student", "task": task, "label": label, "psnr_mean": psnr, "psnr_low": psnr - 0.2,
                         "psnr_high": psnr + 0.2, "macs_G": macs, "params_M": params})
    return pd.DataFrame(rows)


def _line_colours(fig: Figure) -> list[set[str]]:
    """Per visible panel: the hex colours of its lines (seaborn's hue lines carry no label, so
    the tests match them to the figure legend's handles by colour)."""
    return [{to_hex(line.get_color()) for line in ax.get_lines()} for ax in fig.axes if ax.get_visible()]


def test_no_pareto_when_every_student_costs_the_same() -> None:
    same = _table({"scratch": (1.0, 0.5), "skd": (1.0, 0.5), "fitnet": (1.0, 0.5)})
    assert figures.pareto_costs(same) == []  # the teacher's cost differs, but nothing trades off among students
    assert figures.pareto_costs(_table({"w8": (0.5, 0.26), "w12": (1.0, 0.57)})) == ["macs_G", "params_M"]
    assert figures.pareto_costs(_table({"a": (1.0, 0.5), "b": (1.0, 0.6)})) == ["params_M"]


def test_pareto_one_row_per_task_own_axis_error_bars_legend_outside() -> None:
    table = _table({"scratch": (1.0, 0.57), "student=student-cpu": (1.0, 0.57), "w8": (0.5, 0.26)})
    fig = figures.pareto_figure(table)
    axes = np.asarray(fig.axes).reshape(len(TASKS), 2)
    for row, task in zip(axes, TASKS, strict=True):
        assert all(ax.get_title().startswith(f"{task}:") for ax in row)
        low, high = row[0].get_ylim()
        assert low < BASE[task] - 0.2 and high > BASE[task] + 2 and high - low < 5  # its own y axis
        bars = [c for c in row[0].containers if isinstance(c, ErrorbarContainer)]
        assert len(bars) == 3 and all(c.has_yerr for c in bars)  # every student: mean with its 95% interval
        assert row[0].get_legend() is None
    assert len(fig.legends) == 1
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"scratch", "student=student-cpu", "w8", "teacher (t)"} <= set(legend)
    # scratch and student=student-cpu are the same model: they are spread apart and marked differently
    scratch, same, _ = [c for c in axes[0][0].containers if isinstance(c, ErrorbarContainer)]
    assert scratch.lines[0].get_xdata()[0] != same.lines[0].get_xdata()[0]
    assert scratch.lines[0].get_marker() != same.lines[0].get_marker()


def test_budget_frame_and_figure_break_at_unfinished_points() -> None:
    rows = []
    for seed in (0, 1):
        for steps in (150, 300, 600):
            done = not (steps == 300 and seed == 1) and steps != 600  # 300: one seed of two; 600: none
            rows.append({"id": f"w8-{steps}-{seed}", "task": "denoise25", "student": "w8", "seed": seed,
                         "status": "done" if done else "pending", STEPS_COLUMN: steps,
                         "training.steps": steps if done else math.nan, "params": 262289.0 if done else math.nan,
                         "metrics.psnr": 28.0 + steps / 300 + 0.2 * seed if done else math.nan,
                         "metrics.ssim": 0.8 if done else math.nan})
    frame = budget_frame(pd.DataFrame(rows), pd.DataFrame({"task": ["denoise25"], "psnr": [32.0]}))
    assert frame["steps"].tolist() == [150, 300, 600] and frame["seeds"].tolist() == [2, 1, 0]
    assert frame["planned"].tolist() == [2, 2, 2] and math.isnan(frame["psnr"].iloc[2])
    assert frame["psnr_low"].notna().tolist() == [True, False, False]  # an interval only from two seeds
    teachers = pd.DataFrame({"task": ["denoise25"], "model": ["teacher"], "psnr": [32.0], "params": [2.2e6],
                             "steps": [2000]})
    fig = figures.budget_figure(frame, teachers)
    ax = fig.axes[0]
    curve = next(line for line in ax.get_lines() if line.get_marker() == "o")
    assert np.isnan(curve.get_ydata()[-1])  # not bridged: the line stops where no seed finished
    pending = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert [list(line.get_xdata()) for line in pending] == [[300, 600]]  # a seed missing at 300, all at 600
    assert any(isinstance(c, ErrorbarContainer) for c in ax.containers)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(text.startswith("w8 (0.262 M; 1-2 seeds)") for text in legend)
    assert any("not finished" in text for text in legend) and ax.get_legend() is None


def _monitor(terms_by_label: dict[str, list[str]]) -> pd.DataFrame:
    rows = [{"label": label, "task": "t", "seed": 0, "step": step, "key": f"share/{term}", "value": 1 / len(terms)}
            for label, terms in terms_by_label.items() for step in (0, 5) for term in terms]
    return pd.DataFrame(rows, columns=balance.COLUMNS)


def test_a_term_has_one_colour_in_every_panel_and_figure() -> None:
    first = balance.balance_figure(_monitor({"skd": ["pixel_l1", "skd_channel", "contrastive"],
                                             "fitnet": ["pixel_l1", "fitnet"]}))
    second = balance.balance_figure(_monitor({"skd": ["pixel_l1", "contrastive"], "at": ["pixel_l1", "at"]}))
    panels = _line_colours(first) + _line_colours(second)
    expected = [{"pixel_l1", "skd_channel", "contrastive"}, {"pixel_l1", "fitnet"}, {"pixel_l1", "contrastive"},
                {"pixel_l1", "at"}]  # the panels' terms, in panel order
    for colours, terms in zip(panels, expected, strict=True):
        assert {TERM_COLOURS[t].lower() for t in terms} <= colours  # each term in its one colour, every panel
    for fig in (first, second):
        legend = {t.get_text(): to_hex(h.get_color()) for t, h in zip(fig.legends[0].get_texts(),
                                                                     fig.legends[0].legend_handles, strict=True)}
        assert legend == {t: TERM_COLOURS[t].lower() for t in legend} and not any(ax.get_legend() for ax in fig.axes)
    assert term_colours(["b_new", "pixel_l1", "a_new"]) == term_colours(["a_new", "b_new", "pixel_l1"])


def test_a_variant_has_one_colour_in_every_figure() -> None:
    colours = label_colours(["scratch", "mca_dims=none", "skd", "mca_dims=both"])
    assert colours["scratch"] == METHOD_COLOURS["scratch"] and colours["skd"] == METHOD_COLOURS["skd"]
    assert len(set(colours.values())) == 4
    assert label_colours(["mca_dims=none", "mca_dims=both"]) == {k: colours[k] for k in ("mca_dims=none",
                                                                                          "mca_dims=both")}
    history = pd.DataFrame([{"label": label, "task": "t", "seed": 0, "step": step, "metric": "loss", "value": 1.0}
                            for label in colours for step in (1, 2)])
    similarity = history.drop(columns="metric").assign(tap="latent", value=0.5)[lambda f: f["label"] != "scratch"]
    for fig, data in ((figures.training_figure(history, colours), history),
                      (figures.similarity_figure(similarity, colours), similarity)):
        legend = {t.get_text(): to_hex(h.get_color()) for t, h in zip(fig.legends[0].get_texts(),
                                                                     fig.legends[0].legend_handles, strict=True)}
        assert legend == {k: v.lower() for k, v in colours.items() if k in set(data["label"])}
        assert set(legend.values()) <= _line_colours(fig)[0]  # the curves are drawn in those colours


def test_every_figure_has_a_vector_twin(tmp_path: Path) -> None:
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().imshow(np.linspace(0, 1, 64).reshape(8, 8))
    plot = figures.save_figure(fig, tmp_path / "ablation")
    image = figures.save_figure(fig, tmp_path / "qualitative_denoise25_camera")
    assert [p.name for p in plot] == ["ablation.png", "ablation.svg"]
    assert [p.name for p in image] == ["qualitative_denoise25_camera.png", "qualitative_denoise25_camera.pdf"]
    assert image[1].read_bytes()[:5] == b"%PDF-" and b"CreationDate" not in image[1].read_bytes()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic tiny grid of :mod:`test_report`, its records written (not reported)."""
    root = tmp_path_factory.mktemp("figures")
    (root / "tiny.yaml").write_text(GRID)
    write_records(load_grid(root / "tiny.yaml"), root / "runs")
    return root


def test_report_figures_all_have_a_vector_twin(tiny: Path) -> None:
    build_report(load_grid(tiny / "tiny.yaml"), tiny / "runs", tiny / "results")
    folder = tiny / "results" / "tiny" / "figures"
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) >= 3
    for png in pngs:
        assert png.with_suffix(".svg").is_file() or png.with_suffix(".pdf").is_file(), png.name


def test_short_caption_is_shorter_than_full_and_states_units_and_seeds(tiny: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    captions = {}
    for kind in ("short", "full"):
        out = tiny / f"out-{kind}"
        assert main(["report", str(tiny / "tiny.yaml"), "--runs-dir", str(tiny / "runs"), "--out", str(out),
                     "--caption", kind, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["grid"] == "tiny"
        captions[kind] = (out / "tiny" / "tables" / "summary.md").read_text().split("\n\n")[-1]
    short, full = captions["short"], captions["full"]
    assert len(short) < len(full) / 2 and short.count(". ") <= 3
    for phrase in ("PSNR (dB)", "mean ± SD over 3 seeds (0, 1, 2; profile smoke)", "95% CI", "CPU (cpu0)", "fp32",
                   "literature/default weights, untuned", "index.html#conventions"):
        assert phrase in short, phrase
    assert "Power (Δ PSNR" in full and "Power (Δ PSNR" not in short
    with pytest.raises(ConfigError, match="--caption 'long'"):
        build_report(load_grid(tiny / "tiny.yaml"), tiny / "runs", tiny / "out-bad", caption="long")
