"""Figures from what the cells of a smoke grid that really ran kept when they were scored:
qualitative comparisons with a zoomed region, error maps, cross-net attention maps and
teacher-student similarity; the report runs no model; the region picker, the ``report:`` block of
a grid spec and its errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from bench.execute.runner import run_grids
from bench.report import build_report
from bench.report import qualitative as q
from bench.report.records import GridRun, load_cells, load_run
from bench.spec.grid import QualitativeOptions, load_grid
from skd_core.errors import ConfigError, UnknownNameError

GRID = """\
study: tiny
profile: smoke
tasks: [denoise25]
seeds: [0]
base: {method: skd}
axes: {options.mca_dims: [none, both]}
"""


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[GridRun, Path, Path]:
    """The tiny smoke grid trained (teacher, two SKD variants, scratch) and reported:
    ``(its run as the report reads it, runs folder, figures folder)``."""
    root = tmp_path_factory.mktemp("qualitative")
    (root / "tiny.yaml").write_text(GRID)
    grid = load_grid(root / "tiny.yaml")
    run_grids([grid], root / "runs", progress=False)
    build_report(grid, root / "runs", root / "results")
    return load_run(grid, root / "runs"), root / "runs", root / "results" / "tiny" / "figures"


def test_figures_exist_and_are_not_blank(smoke: tuple[GridRun, Path, Path]) -> None:
    _, _, figures = smoke
    stems = ["qualitative_denoise25_camera", "qualitative_denoise25_chelsea", "error_denoise25_camera",
             "error_denoise25_chelsea", "attention", "similarity"]
    for stem in stems:
        png = figures / f"{stem}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000, stem
        assert imread(png)[..., :3].std() > 0.05, stem  # not a blank canvas
        # image figures are PNG only (an SVG would wrap the same pixels); plots get an SVG too
        assert (figures / f"{stem}.svg").is_file() == (stem == "similarity")
    page = (figures.parent / "README.md").read_text()
    for stem in stems:
        assert f"figures/{stem}.png" in page


def test_panel_scores_are_the_cells_scores(smoke: tuple[GridRun, Path, Path]) -> None:
    grid, _, _ = smoke
    results = load_cells(grid)
    comp = q.comparison(grid, results, "denoise25")
    assert [m.label for m in comp.methods] == ["teacher (teacher-smoke)", "scratch", "mca_dims=none",
                                               "mca_dims=both"]
    for method in comp.methods[1:]:
        record = next(r.record for r in results if r.cell.label == method.label)
        for pair in comp.pairs:
            scored = next(row for row in record["metrics"]["per_image"] if row["name"] == pair.name)
            got = comp.scores(comp.output(method, pair), pair)
            assert got["psnr"] == pytest.approx(scored["psnr"], abs=1e-6), (method.label, pair.name)
            assert got["ssim"] == pytest.approx(scored["ssim"], abs=1e-6)


def test_default_region_is_where_outputs_disagree() -> None:
    rng = np.random.default_rng(0)
    base = rng.random((64, 48, 3))
    other = base.copy()
    other[30:38, 20:28] += 0.5  # the disagreement: rows 30-37, columns 20-27
    assert q.pick_region([base, base, other], 8) == (30, 20)
    assert q.pick_region([base, base], 8) == (0, 0)  # all windows tie: the first one
    assert q.default_region_size(64, 48) == 8 and q.default_region_size(512, 768) == 96
    with pytest.raises(ConfigError, match="does not fit"):
        q.pick_region([base], 50)


def test_configured_images_and_region_are_used(smoke: tuple[GridRun, Path, Path]) -> None:
    grid, _, _ = smoke
    results = load_cells(grid)
    chosen = dataclasses.replace(grid, qualitative=QualitativeOptions(images=("chelsea",), region=(8, 16, 16)))
    plans = q.image_plans(chosen, results)
    assert [stem for _, stem, _, _ in plans] == ["qualitative_denoise25_chelsea", "error_denoise25_chelsea"]
    comp = q.comparison(chosen, results, "denoise25")
    assert q.region_of(comp, comp.pairs[0], chosen.qualitative) == (8, 16, 16)
    assert "zoom rows 8-23, columns 16-31" in plans[0][2]()._suptitle.get_text()
    bad = dataclasses.replace(grid, qualitative=QualitativeOptions(images=("chelsey",)))
    with pytest.raises(UnknownNameError, match="'chelsey'.*did you mean 'chelsea'"):
        q.image_plans(bad, results)
    too_big = dataclasses.replace(grid, qualitative=QualitativeOptions(region=(60, 0, 16)))
    with pytest.raises(ConfigError, match="does not fit test image"):
        q.region_of(comp, comp.pairs[0], too_big.qualitative)


def test_attention_maps_of_the_skd_cell(smoke: tuple[GridRun, Path, Path]) -> None:
    grid, _, _ = smoke
    results = load_cells(grid)
    cell = q.attention_cell(grid, results)
    assert cell.cell.label == "mca_dims=both"  # mca_dims=none keeps no attention diagnostics
    maps = q.attention_maps(cell, grid.store)
    assert list(maps.channel) == ["encoder_level1", "latent", "decoder_level1"]
    assert maps.image.shape == (64, 64, 3) and maps.image_name == "camera"
    for tap, channel in maps.channel.items():
        assert np.allclose(channel.sum(-1), 1, atol=1e-5)
        assert np.allclose(maps.spatial[tap].sum((1, 2)), 1, atol=1e-5)
    no_skd = dataclasses.replace(grid, cells=[c for c in grid.cells if c.label != "mca_dims=both"])
    assert "no finished cell kept cross-net attention" in q.attention_cell(no_skd, load_cells(no_skd))


def test_report_runs_no_model(smoke: tuple[GridRun, Path, Path], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the report ran a model")

    monkeypatch.setattr(torch.nn.Module, "__call__", refuse)
    grid, runs, figures = smoke
    page = build_report(load_grid(grid.path), runs, tmp_path)
    drawn = sorted(p.name for p in (tmp_path / "tiny" / "figures").glob("*.png"))
    assert drawn == sorted(p.name for p in figures.glob("*.png")) and "attention.png" in drawn
    assert page.is_file()


@pytest.mark.parametrize("report,expected", [
    ("{qualitativ: {}}", r"tiny.yaml.*unknown report key 'qualitativ'.*did you mean 'qualitative'"),
    ("{qualitative: {image: [camera]}}", r"unknown qualitative figure key 'image'.*did you mean 'images'"),
    ("{qualitative: {region: [0, 0]}}", r"region must be \[top, left, size\]"),
    ("{qualitative: {max_images: 0}}", r"max_images must be >= 1"),
])
def test_bad_report_block_names_the_key(tmp_path: Path, report: str, expected: str) -> None:
    (tmp_path / "tiny.yaml").write_text(f"{GRID}report: {report}\n")
    with pytest.raises(ConfigError, match=expected):
        load_grid(tmp_path / "tiny.yaml")


def test_report_block_is_read(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(f"{GRID}report: {{qualitative: {{images: [camera], region: [0, 8, 16]}}}}\n")
    assert load_grid(tmp_path / "tiny.yaml").qualitative == QualitativeOptions(("camera",), (0, 8, 16), 2)
