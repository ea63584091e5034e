"""``skd-bench perf``: the median comparison, its errors, and the whole check end to end in a
clone of this repository (an unchanged tree passes; a tree with a deliberate slowdown fails)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.commands.perf import threshold
from bench.perf.gate import compare, load_run
from skd_core.errors import SkdError

REPO = Path(__file__).resolve().parents[1]
MACHINE = {"cpu": {"brand_raw": "Test CPU", "count": 2}, "python_version": "3.11.7",
           "torch": {"device": "cpu", "device_name": "Test CPU", "threads": 2, "torch_version": "2.13.0+cpu",
                     "cuda_version": None}}


def run_json(medians: dict[str, float], machine: dict | None = None) -> dict:
    return {"machine_info": machine or MACHINE,
            "benchmarks": [{"fullname": name, "group": "g", "stats": {"median": m}} for name, m in medians.items()]}


def test_compare_flags_only_medians_beyond_the_threshold() -> None:
    base = run_json({"a": 1.0, "b": 1.0, "c": 1.0, "gone": 1.0})
    cur = run_json({"a": 1.09, "b": 1.11, "c": 0.5, "new": 1.0})
    result = compare(base, cur, 0.10)
    verdicts = dict(zip(result.rows["name"], result.rows["verdict"], strict=True))
    assert verdicts == {"a": "same", "b": "SLOWER", "c": "faster", "new": "new", "gone": "gone"}
    assert list(result.regressions["name"]) == ["b"]
    assert result.rows.set_index("name").loc["b", "change"] == pytest.approx(0.11)
    page = result.markdown("stored run", "tree")
    assert "**1 regression(s)** beyond +10%" in page and "+11.0%" in page


def test_compare_refuses_a_baseline_from_another_machine() -> None:
    other = json.loads(json.dumps(MACHINE))
    other["cpu"]["brand_raw"] = "Other CPU"
    with pytest.raises(SkdError, match="different machines.*cpu.brand_raw.*'Other CPU' vs 'Test CPU'"):
        compare(run_json({"a": 1.0}, other), run_json({"a": 1.0}), 0.1)


def test_compare_reports_a_torch_upgrade_without_refusing() -> None:
    newer = json.loads(json.dumps(MACHINE))
    newer["torch"]["torch_version"] = "2.14.0+cpu"
    result = compare(run_json({"a": 1.0}), run_json({"a": 1.0}, newer), 0.1)
    shown = result.machines.set_index("field").loc["torch.torch_version"]
    assert (shown["baseline"], shown["current"]) == ("2.13.0+cpu", "2.14.0+cpu")


def test_a_file_that_is_not_a_benchmark_run_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(SkdError, match="notes.json is not a pytest-benchmark JSON"):
        load_run(bad)
    with pytest.raises(SkdError, match="cannot read benchmark run .*missing.json"):
        load_run(tmp_path / "missing.json")


@pytest.mark.parametrize(("text", "value"), [("10", 0.10), ("12.5%", 0.125)])
def test_threshold_is_a_percentage(text: str, value: float) -> None:
    assert threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["ten", "0", "-5%"])
def test_bad_threshold_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="threshold"):
        threshold(text)


#: one cheap benchmark; the slowdown below adds 1 s per call (>20x), the threshold allows 4x
SELECT = "test_inference and student-cpu"
SLOWDOWN = ("    def forward(self, inp_img: torch.Tensor) -> torch.Tensor:\n",
            "    def forward(self, inp_img: torch.Tensor) -> torch.Tensor:\n        __import__('time').sleep(1.0)\n")


def _perf(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "bench", "perf", "--select", SELECT, "--threshold", "300", *args],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs git and a checkout")
def test_perf_passes_on_an_unchanged_tree_and_fails_on_a_slowdown(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(repo)], check=True)
    unchanged = _perf(repo, "--baseline", "HEAD", "--out", str(tmp_path / "out1"), "--save",
                      str(tmp_path / "base.json"))
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert "no regression beyond 300%" in unchanged.stdout
    assert load_run(tmp_path / "base.json")["benchmarks"]

    model = repo / "skd_core" / "models" / "restormer.py"
    source = model.read_text()
    assert source.count(SLOWDOWN[0]) == 1
    model.write_text(source.replace(*SLOWDOWN))
    slowed = _perf(repo, "--baseline", str(tmp_path / "base.json"), "--out", str(tmp_path / "out2"))
    assert slowed.returncode == 1, slowed.stdout + slowed.stderr
    assert "1 of 1 benchmarks slower than the baseline by more than 300%" in slowed.stdout
    assert "SLOWER" in (tmp_path / "out2" / "compare.md").read_text()
    # the git-ref baseline sees the same slowdown in the working tree
    against_head = _perf(repo, "--baseline", "HEAD", "--out", str(tmp_path / "out3"))
    assert against_head.returncode == 1, against_head.stdout + against_head.stderr
