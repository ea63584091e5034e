"""The paper-layout table of a multi-task study (``tables/paper_layout.{md,tex,csv}``): methods as
rows with the teacher first, one PSNR / SSIM group per task in that task's scoring convention, then
params and MACs. Records are written synthetically for three tasks, so nothing trains here.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pandas as pd
import pytest
from test_report import PROVENANCE, _arch, _metrics

from bench.execute.cells import cells_of
from bench.execute.manifest import manifest
from bench.report import build_report
from bench.report.paper_layout import methods_text
from bench.spec.grid import load_grid
from bench.store import RunStore
from skd_core.atomic import atomic_write_json

TASKS = ("derain", "deblur", "denoise25")
GRID = """\
study: multi
description: Three tasks.
profile: smoke
tasks: [derain, deblur, denoise25]
seeds: [0, 1]
cells:
  - {label: skd, method: skd}
  - {label: scratch, method: scratch}
  - {label: output_kd, method: output_kd}
report: {seeds: "two, enough for a test"}
"""
LABELS = ("skd", "scratch", "output_kd")  # grid order
#: PSNR (dB) of a cell: the task's base plus the method's offset plus 0.1 dB per seed
BASE = {"derain": 30.0, "deblur": 25.0, "denoise25": 28.0}
OFFSET = {"skd": 0.5, "scratch": 0.0, "output_kd": 0.25}
TEACHER_GAIN = 2.0
MISSING_CELL = ("output_kd", "deblur", 1)  # never ran: its mean is over one seed
STUDENT_PARAMS, TEACHER_PARAMS = 56073, 262301


def _psnr(label: str, task: str, seed: int) -> float:
    return BASE[task] + OFFSET[label] + 0.1 * seed


def _scored(psnr: float, task: str) -> dict:
    return {**_metrics(psnr), "color": "y" if task == "derain" else "rgb", "max_side": 0}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three-task study's report folder, built from synthetic records."""
    root = tmp_path_factory.mktemp("layout")
    (root / "multi.yaml").write_text(GRID)
    grid = load_grid(root / "multi.yaml")
    cells, runs = cells_of(grid), root / "runs"
    data = manifest(grid, cells, {"student-smoke": "a1", "teacher-smoke": "a2"})
    RunStore(runs).write_manifest(grid.study, grid.run_key(), data)
    teacher_ids = {row["task"]: row["teacher_id"] for row in data["cells"] if row["teacher_id"]}
    for cell in cells:
        if (cell.label, cell.task, cell.seed) == MISSING_CELL:
            continue
        distilled = cell.label != "scratch"
        metrics = _scored(_psnr(cell.label, cell.task, cell.seed), cell.task)
        atomic_write_json(runs / "cells" / cell.id / "record.json", {
            "id": cell.id, "kind": "student", "config": cell.job.config(), "provenance": PROVENANCE, "finished": 1.7e9,
            "status": "done", "model": cell.job.student, "params": STUDENT_PARAMS, "adapter_params": 0,
            "metrics": metrics, "training": {"seconds": 1.0, "steps": 4, "history": []},
            "teacher": {"id": teacher_ids[cell.task], "metrics": metrics} if distilled else None})
    for task, tid in teacher_ids.items():
        atomic_write_json(runs / "teachers" / tid / "record.json", {
            "id": tid, "kind": "teacher", "status": "done", "model": "teacher-smoke", "params": TEACHER_PARAMS,
            "metrics": _scored(BASE[task] + TEACHER_GAIN, task), "training": {"steps": 6}, "provenance": PROVENANCE,
            "finished": 1.7e9})
    atomic_write_json(runs / "arch" / "a1" / "record.json", _arch("student-smoke", STUDENT_PARAMS, 26_000_000, 50.0))
    atomic_write_json(runs / "arch" / "a2" / "record.json", _arch("teacher-smoke", TEACHER_PARAMS, 90_000_000, 100.0))
    build_report(grid, runs, root / "results", caption="full")  # every convention, tested below
    return root / "results" / "multi"


def _mean(label: str, task: str) -> float:
    seeds = [s for s in (0, 1) if (label, task, s) != MISSING_CELL]
    return sum(_psnr(label, task, s) for s in seeds) / len(seeds)


SD = statistics.stdev([0.0, 0.1])  # the sample SD over seeds 0 and 1 of every complete cell's PSNR (dB)


def _markdown_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.split("|")[1:-1]] for line in lines if not set(line) <= set("|-: ")]


def test_markdown_layout(study: Path) -> None:
    text = (study / "tables" / "paper_layout.md").read_text()
    header, *rows = _markdown_rows(text)
    assert header == ["Method", *(f"{t}: PSNR (dB) / SSIM" for t in TASKS), "Params (M)", "MACs (G)"]
    assert [r[0] for r in rows] == ["teacher (teacher-smoke)", *LABELS]  # teacher first, then grid order
    table = {r[0]: dict(zip(header[1:], r[1:], strict=True)) for r in rows}
    for i, task in enumerate(TASKS):
        column = header[1 + i]
        assert table["teacher (teacher-smoke)"][column] == f"{BASE[task] + 2:.2f} / {(BASE[task] + 2) / 100:.4f}"
        mean = _mean("scratch", task)
        assert table["scratch"][column] == f"{mean:.2f} ± {SD:.2f} / {mean / 100:.4f} ± {SD / 100:.4f}"
        best = _mean("skd", task)
        assert table["skd"][column].endswith(f"**{best / 100:.4f} ± {SD / 100:.4f}**")  # best student, not the teacher
    assert table["output_kd"]["deblur: PSNR (dB) / SSIM"].startswith(f"{_mean('output_kd', 'deblur'):.2f}†")
    assert table["teacher (teacher-smoke)"]["Params (M)"] == "0.2623" and table["skd"]["MACs (G)"] == "0.026"
    assert "**" not in table["skd"]["Params (M)"]  # equal for every student: nothing to choose
    caption = text.split("\n\n")[-1]
    for phrase in ("derain: embedded test set, Y channel", "deblur: embedded test set, RGB", "PSNR (dB)",
                   "Mean ± sample SD over seeds: 2 per cell", "1x3x64x64", "teacher-smoke, 6 steps",
                   "Methods: skd, scratch, output_kd",
                   "same student (student-smoke)", "†: fewer finished", "Seeds: two, enough for a test",
                   "Weights: ", "confidence intervals, and each task's minimum detectable effect, are in the summary"):
        assert phrase in caption, phrase


def test_latex_layout_is_well_formed(study: Path) -> None:
    tex = (study / "tables" / "paper_layout.tex").read_text()
    assert tex.count("{") == tex.count("}") and tex.count(r"\begin{") == tex.count(r"\end{")
    columns = 1 + 2 * len(TASKS) + 2
    spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", tex).group(1)
    assert len(spec) == columns
    body = tex.split(r"\toprule")[1].split(r"\bottomrule")[0]
    rows = [line for line in body.splitlines() if line.endswith(r"\\")]
    for row in rows:
        spans = sum(int(n) for n in re.findall(r"\\multicolumn\{(\d+)\}", row))
        cells = row.count("&") + 1 - len(re.findall(r"\\multicolumn", row))
        assert cells + spans == columns, row
    group = rows[0]
    assert [m for m in re.findall(r"\\multicolumn\{2\}\{c\}\{([^}]*)\}", group)] == list(TASKS)
    assert re.findall(r"\\cmidrule\(lr\)\{(\d+-\d+)\}", body) == ["2-3", "4-5", "6-7"]
    assert rows[2].startswith("teacher (teacher-smoke) &") and rows[3].startswith("skd &")
    assert rf"\textbf{{{_mean('skd', 'derain') / 100:.4f} $\pm$ {SD / 100:.4f}}}" in rows[3]
    assert r"$^\dagger$" in rows[5] and r"output\_kd" in rows[5]
    assert body.count(r"\midrule") == 2  # below the headers, below the teacher


def test_csv_layout_values(study: Path) -> None:
    csv = pd.read_csv(study / "tables" / "paper_layout.csv").set_index("label")
    assert list(csv.index) == ["teacher (teacher-smoke)", *LABELS]
    for task in TASKS:
        assert csv.loc["output_kd", f"{task}.psnr"] == pytest.approx(_mean("output_kd", task))
        assert csv.loc["teacher (teacher-smoke)", f"{task}.psnr"] == pytest.approx(BASE[task] + TEACHER_GAIN)
        assert csv.loc["skd", f"best_{task}.psnr"] and not csv.loc["teacher (teacher-smoke)", f"best_{task}.psnr"]
    assert csv.loc["output_kd", "deblur.n_done"] == 1 and csv.loc["output_kd", "deblur.n_cells"] == 2
    assert csv.loc["skd", "params_M"] == pytest.approx(STUDENT_PARAMS / 1e6)
    assert csv.loc["teacher (teacher-smoke)", "macs_G"] == pytest.approx(0.09)


def test_csv_layout_has_the_sd_over_seeds(study: Path) -> None:
    csv = pd.read_csv(study / "tables" / "paper_layout.csv").set_index("label")
    assert csv.loc["skd", "derain.psnr_sd"] == pytest.approx(SD) and csv.loc["skd", "derain.ssim_sd"] == pytest.approx(
        SD / 100)
    assert pd.isna(csv.loc["output_kd", "deblur.psnr_sd"])  # one seed finished: no SD
    assert pd.isna(csv.loc["teacher (teacher-smoke)", "derain.psnr_sd"])


def test_short_caption_is_shorter_and_states_units_seeds_device(study: Path, tmp_path: Path) -> None:
    root = study.parent.parent
    build_report(load_grid(root / "multi.yaml"), root / "runs", tmp_path, caption="short")
    full = (study / "tables" / "paper_layout.md").read_text().split("\n\n")[-1]
    short = (tmp_path / "multi" / "tables" / "paper_layout.md").read_text().split("\n\n")[-1]
    assert len(short) < len(full) / 2
    for phrase in ("PSNR (dB)", "mean ± SD over 2 seeds (0, 1; profile smoke)", "CPU (cpu0)", "fp32",
                   "literature/default weights, untuned", "index.html#conventions", "†: fewer seeds finished"):
        assert phrase in short, phrase
    tex = (tmp_path / "multi" / "tables" / "paper_layout.tex").read_text()
    assert r"\caption{PSNR (dB) and SSIM: mean $\pm$ SD over 2 seeds" in tex and r"$\pm$ 0.07" in tex


def test_page_links_the_layout(study: Path) -> None:
    page = (study / "README.md").read_text()
    for name in ("paper_layout.md", "paper_layout.tex", "paper_layout.csv", "summary.md"):
        assert f"[{name}](tables/{name})" in page


def test_methods_text_names_what_tells_variants_apart() -> None:
    cells = pd.DataFrame({
        "status": ["done"] * 4 + ["pending"], "label": ["a", "b", "scratch", "w8", "c"],
        "method": ["skd", "skd", "scratch", "scratch", "skd"],
        "student": ["s", "s", "s", "s-w8", "s"], "config.train.steps": [150.0] * 4 + [None],
        "config.options.mca_dims": ["none", "both", "both", "both", None],
        "config.options.distance": ["gk"] * 4 + [None]})
    text = methods_text(cells)
    assert text.startswith("Methods: a, b, scratch, w8; each trains its student (a: s, b: s, scratch: s, w8: s-w8)")
    assert "150 steps" in text and text.endswith("variants of one method differ in: skd: mca_dims.")
