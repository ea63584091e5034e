"""The training-budget study: ``ablations/budget.yaml`` expands as meant, and a smoke grid of its
shape (two architectures, steps [2, 4], one seed, the teacher trained for the study) runs and
reports ``tables/budget.csv`` and ``figures/budget.{png,svg}``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from bench.execute.cells import cells_of
from bench.execute.runner import run_grids
from bench.report import build_report
from bench.report.budget import STEPS_AXIS
from bench.spec.grid import load_grid
from bench.store import RunStore

SPEC = Path(__file__).parents[1] / "ablations" / "budget.yaml"
STUDENTS = ("student-smoke", "teacher-smoke")
STEPS = (2, 4)
#: an explicit cell beside the axes (student, steps): it joins its architecture's curve
EXPLICIT = ("teacher-smoke", 3)


def test_budget_spec_expands_to_students_by_steps() -> None:
    grid = load_grid(SPEC)
    cells = cells_of(grid)
    assert grid.train_teacher and {c.job.method for c in cells} == {"scratch"} and grid.seeds == [0]
    assert [(c.job.student, c.job.profile.student_train.steps) for c in cells] == [
        (s, n) for s in ("student-cpu-w8", "student-cpu", "student-cpu-w16") for n in (150, 300, 600, 1200)] + [
        ("teacher-cpu", n) for n in (150, 300, 600)]
    assert {c.job.profile.teacher_train.steps for c in cells} == {2000}  # the teacher keeps its own schedule
    assert cells[0].label == "student=student-cpu-w8, steps=150"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The smoke budget grid run and reported: ``(runs folder, study report folder)``."""
    root = tmp_path_factory.mktemp("budget")
    spec = yaml.safe_load(SPEC.read_text())
    spec.update(profile="smoke", axes={"student": list(STUDENTS), STEPS_AXIS: list(STEPS)},
                cells=[{"label": "explicit", "student": EXPLICIT[0],
                        "profile_overrides": {"student_train": {"steps": EXPLICIT[1]}}}])
    (root / "budget.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    grid = load_grid(root / "budget.yaml")
    summary = run_grids([grid], root / "runs", progress=False)
    assert summary.done == len(STUDENTS) * len(STEPS) + 1 and summary.failed == 0
    build_report(grid, root / "runs", root / "results")
    return root / "runs", root / "results" / "budget"


@pytest.mark.slow
def test_budget_csv_rows(study: tuple[Path, Path]) -> None:
    runs, folder = study
    csv = pd.read_csv(folder / "tables" / "budget.csv")
    assert list(csv.columns) == ["task", "student", "params_M", "steps", "psnr", "ssim", "seeds", "planned",
                                 "psnr_low", "psnr_high", "d_psnr_teacher"]
    expected = sorted([(s, n) for s in STUDENTS for n in STEPS] + [EXPLICIT],
                      key=lambda p: (STUDENTS.index(p[0]), p[1]))
    assert list(zip(csv["student"], csv["steps"], strict=True)) == expected  # per curve, by steps
    assert (csv["task"] == "denoise25").all() and (csv["seeds"] == 1).all() and csv["psnr_low"].isna().all()
    assert (csv["planned"] == 1).all()
    records = pd.read_csv(folder / "records.csv")
    for row in csv.itertuples():
        cell = records[(records["student"] == row.student) & (records["training.steps"] == row.steps)].iloc[0]
        assert cell["config.train.steps"] == row.steps  # the axis (or the cell's override) reached the schedule
        assert row.psnr == pytest.approx(cell["metrics.psnr"], rel=1e-5)
        assert row.params_M == pytest.approx(cell["params"] / 1e6, rel=1e-5)
    teachers = list((runs / "teachers").glob("*/record.json"))
    assert len(teachers) == 1  # trained for the study though no cell distils
    teacher = RunStore(runs).read_record(teachers[0].parent)
    assert teacher["training"]["steps"] == 6  # the smoke teacher's own schedule
    gap = (csv["psnr"] - teacher["metrics"]["psnr"]).to_numpy()
    assert csv["d_psnr_teacher"].to_numpy() == pytest.approx(gap, abs=1e-4)  # the CSV keeps 6 digits


@pytest.mark.slow
def test_budget_figure_and_teacher_row(study: tuple[Path, Path]) -> None:
    _, folder = study
    png = folder / "figures" / "budget.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert (folder / "figures" / "budget.svg").is_file()
    page = (folder / "README.md").read_text()
    assert "](figures/budget.png)" in page and "](tables/budget.csv)" in page
    assert "| denoise25 | teacher (teacher-smoke)" in (folder / "tables" / "summary.md").read_text()
