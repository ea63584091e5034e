"""Declared plugins: a method with its own option, in a file outside the package and named in a grid
spec, runs under the local executor (spawned workers) and a real local Ray; editing it changes its
cells' ids and no other; a plugin whose method raises TypeError gives a failed record while the
rest of the grid finishes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.execute.runner import grid_status, run_grids
from bench.spec.grid import load_grid

PLUGIN = Path(__file__).parent / "data" / "plugins" / "my_methods.py"
GRID = """\
study: plug
profile: smoke
tasks: [denoise25]
seeds: [0]
plugins: [{plugin}]
cells:
  - {{label: l2, method: output_l2, options: {{output_l2_weight: 0.25}}}}
"""


@pytest.fixture(scope="module")
def shared_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the plugin for the tests that import it in this process (a method name registers
    once per process)."""
    folder = tmp_path_factory.mktemp("plugin")
    return Path(shutil.copy(PLUGIN, folder / "my_methods.py"))


def _spec(tmp_path: Path, extra: str = "", plugin: Path | None = None) -> Path:
    """A grid spec naming ``plugin`` (default: a fresh copy beside the spec, by relative path)."""
    if plugin is None:
        shutil.copy(PLUGIN, tmp_path / "my_methods.py")
    (tmp_path / "plug.yaml").write_text(GRID.format(plugin=plugin or "my_methods.py") + extra)
    return tmp_path / "plug.yaml"


def _status(spec: Path, runs: Path) -> dict[str, dict]:
    out = subprocess.run([sys.executable, "-m", "bench", "status", str(spec), "--runs-dir", str(runs), "--json"],
                         capture_output=True, text=True, check=True).stdout
    return {row["label"]: row for row in json.loads(out[out.index("["):])}


def test_plugin_option_is_validated_by_its_own_schema(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "  - {label: bad, method: output_l2, options: {output_l2_wieght: 1}}\n")
    out = subprocess.run([sys.executable, "-m", "bench", "status", str(spec), "--runs-dir", str(tmp_path / "r")],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "plug.yaml: cell 'bad'" in out.stderr and "did you mean 'output_l2_weight'" in out.stderr


@pytest.mark.slow
def test_plugin_cells_run_locally_and_a_typeerror_is_contained(tmp_path: Path, shared_plugin: Path) -> None:
    spec, runs = _spec(tmp_path, "  - {label: broken, method: broken}\n", shared_plugin), tmp_path / "runs"
    summary = run_grids([load_grid(spec)], runs, workers=2, progress=False)  # spawned workers import the plugin
    assert (summary.done, summary.failed) == (2, 1)
    rows = {r["label"]: r for r in grid_status(load_grid(spec), runs)}
    assert rows["l2"]["status"] == rows["scratch"]["status"] == "done"
    assert rows["broken"]["status"] == "failed" and "TypeError" in rows["broken"]["error"]
    record = json.loads((runs / "cells" / rows["broken"]["id"] / "record.json").read_text())
    assert "Traceback" in record["traceback"] and "my_methods.py" in record["traceback"]
    l2 = json.loads((runs / "cells" / rows["l2"]["id"] / "record.json").read_text())
    assert l2["config"]["options"] == {"output_l2_weight": 0.25}
    assert any("output_l2" in h for h in l2["training"]["history"])


def test_editing_the_plugin_changes_only_its_cells_ids(tmp_path: Path) -> None:
    spec, runs = _spec(tmp_path), tmp_path / "runs"
    before = _status(spec, runs)
    plugin = tmp_path / "my_methods.py"
    plugin.write_text(plugin.read_text().replace('"""``weight * mean (S_r - T_r)^2``."""', '"""Reworded."""'))
    assert _status(spec, runs) == before  # a docstring edit
    plugin.write_text(plugin.read_text().replace(".square().mean()", ".square().mean() * 1.0"))
    after = _status(spec, runs)
    assert after["l2"]["id"] != before["l2"]["id"] and after["scratch"]["id"] == before["scratch"]["id"]


@pytest.mark.slow
@pytest.mark.ray
def test_plugin_cells_run_under_a_real_local_ray(tmp_path: Path, shared_plugin: Path) -> None:
    ray = pytest.importorskip("ray")
    spec = _spec(tmp_path, plugin=shared_plugin)
    run_grids([load_grid(spec)], tmp_path / "local", progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_grids([load_grid(spec)], tmp_path / "ray", executor="ray", progress=False)
    finally:
        ray.shutdown()
    assert (summary.done, summary.failed) == (2, 0)
    local = {r["label"]: r for r in grid_status(load_grid(spec), tmp_path / "local")}
    remote = {r["label"]: r for r in grid_status(load_grid(spec), tmp_path / "ray")}
    assert local["l2"]["id"] == remote["l2"]["id"] and local["l2"]["psnr_dB"] == remote["l2"]["psnr_dB"]
