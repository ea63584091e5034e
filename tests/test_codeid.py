"""Code identity: ids follow the source a result imports, never comments or docstrings; a teacher's
id does not depend on distillation methods, losses or reports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.execute.cells import StudentJob, teacher_id
from bench.spec import codeid
from bench.spec.profiles import get_profile
from skd_core.methods import METHODS

METHOD_NAMES = ("scratch", "output_kd", "fitnet", "at", "fakd", "skd")


def _ids() -> tuple[dict[str, str], str]:
    """Each built-in method's smoke cell id, and the smoke teacher's id, under :data:`codeid.INDEX`."""
    cells = {m: StudentJob.create("smoke", "denoise25", m, seed=0).id() for m in METHOD_NAMES}
    return cells, teacher_id(get_profile("smoke"), "denoise25", 0)


@pytest.fixture
def edited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``edit(path, old, new)`` -> the ids with that edit made in a copy of the packages."""
    root = tmp_path / "copy"
    for package in codeid.PROJECT_PACKAGES:
        shutil.copytree(codeid.REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))

    def edit(relative: str, old: str, new: str) -> tuple[dict[str, str], str]:
        path = root / relative
        text = path.read_text()
        assert old in text, (relative, old)
        path.write_text(text.replace(old, new, 1))
        monkeypatch.setattr(codeid, "INDEX", codeid.CodeIndex([root]))
        return _ids()

    monkeypatch.setattr(codeid, "INDEX", codeid.CodeIndex([root]))
    return edit


def test_normalised_source_ignores_comments_and_docstrings_only() -> None:
    base = 'def f(x):\n    """Doc."""\n    return x + 1  # one\n'
    same = 'def f(x):\n    """Another doc,\n    two lines."""\n    # a comment\n    return x + 1\n'
    assert codeid.normalised_source(base) == codeid.normalised_source(same)
    assert codeid.normalised_source(base) != codeid.normalised_source(base.replace("x + 1", "x + 2"))


def test_closure_follows_imports_not_parent_packages() -> None:
    skd = codeid.INDEX.closure([METHODS.get("skd").module])
    at = codeid.INDEX.closure([METHODS.get("at").module])
    assert "skd_core.losses.skd" in skd and "skd_core.mca" in skd and "skd_core.methods.base" in skd
    assert "skd_core.losses.at" in at and "skd_core.losses.skd" not in at and "skd_core.mca" not in at
    assert "skd_core.methods" not in skd  # the package __init__ (every method) is not followed
    teacher = codeid.INDEX.closure(["skd_core.train.runs", METHODS.get("scratch").module, "skd_core.models.restormer"])
    assert not [m for m in teacher if m.startswith(("skd_core.losses", "bench."))] and \
        not [m for m in teacher if m.startswith("skd_core.methods.") and m not in
             ("skd_core.methods.base", "skd_core.methods.options", "skd_core.methods.scratch")]


def test_docstring_or_comment_edit_in_losses_changes_no_id(edited) -> None:
    cells, teacher = _ids()
    assert edited("skd_core/losses/at.py", '"""Attention Transfer (', '"""Attention transfer, reworded (') == \
        (cells, teacher)
    assert edited("skd_core/losses/skd.py", "        parts: dict[str, torch.Tensor] = {}\n",
                  "        # a comment\n        parts: dict[str, torch.Tensor] = {}\n") == (cells, teacher)


@pytest.mark.parametrize("loss,method,old,new", [
    ("skd_core/losses/at.py", "at", "(attention_map(student) - attention_map(teacher)).square().mean()",
     "(attention_map(student) - attention_map(teacher)).square().mean() * 1.0"),
    ("skd_core/losses/skd.py", "skd", "terms[dim] = self.alpha1 * self._distance(attended, t, path)",
     "terms[dim] = self._distance(attended, t, path) * self.alpha1"),
    ("skd_core/losses/fakd.py", "fakd", "FAKD_EPS = 1e-7", "FAKD_EPS = 1e-8"),
])
def test_editing_one_methods_loss_changes_only_its_cells(edited, loss: str, method: str, old: str, new: str) -> None:
    cells, teacher = _ids()
    after, after_teacher = edited(loss, old, new)
    assert after_teacher == teacher
    assert {m for m in METHOD_NAMES if after[m] != cells[m]} == {method}


def test_editing_the_training_loop_changes_every_id(edited) -> None:
    cells, teacher = _ids()
    after, after_teacher = edited("skd_core/train/loop.py", "log_every = max(1, cfg.steps // LOG_POINTS)",
                                  "log_every = max(1, cfg.steps // LOG_POINTS + 0)")
    assert after_teacher != teacher and all(after[m] != cells[m] for m in METHOD_NAMES)


def test_editing_a_report_or_the_runner_changes_no_id(edited) -> None:
    before = _ids()
    assert edited("bench/report/figures.py", "def ", "def _unused() -> None:\n    pass\n\n\ndef ") == before
    assert edited("bench/execute/runner.py", "class GridSummary:", "UNUSED = 1\n\n\nclass GridSummary:") == before
