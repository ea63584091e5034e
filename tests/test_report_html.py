"""The static report page ``results/<study>/index.html``: its content, then (marker ``browser``) how
it behaves in headless Chromium opened from disk.

The report is built from the synthetic records of :mod:`test_report` (nothing trains), plus one
qualitative figure handed to the page writer as a new kind of figure would be.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from matplotlib.figure import Figure
from test_report import GRID, write_records

import bench.report.build
from bench.report import build_report, write_index
from bench.report.figures import save_figure
from bench.report.tables import HEADERS
from bench.spec.grid import load_grid

CHROMIUM = Path("/usr/bin/chromium")
#: for a sandboxed container; ``headless=True`` adds --headless
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
INSTALL = ("install Debian's Chromium (as root: apt-get install -y --no-install-recommends chromium; .ci/run does) "
           "and the driver (pip install -e '.[dev]', which brings playwright; never `playwright install`)")
DESCRIPTION = "Tiny <synthetic> grid & 'friends'."
QUALITATIVE = "Qualitative: restored vs ground truth"
FIGURES = ("ablation", "training", "speedup")  # no pareto: every student has the same MACs


@dataclass
class Report:
    study: Path  # results/<study>
    drawn: dict[str, list[Path]] = field(default_factory=dict)  # what the page writer was given

    @property
    def html(self) -> str:
        return (self.study / "index.html").read_text()


def _build(root: Path) -> Report:
    """Build the report of the grid under ``root`` (records under ``root/runs``), adding one
    qualitative figure to the drawn figures; returns what the page writer was given."""
    grid = load_grid(root / "tiny.yaml")
    report = Report(root / "results" / grid.study)
    write_html = bench.report.build.write_study_html

    def with_qualitative(*args: Any) -> Path:
        figure = Figure(figsize=(2, 1))
        figure.add_subplot().imshow(np.linspace(0, 1, 64).reshape(8, 8))
        figures = {**args[4], QUALITATIVE: save_figure(figure, report.study / "figures" / "qualitative_denoise25")}
        report.drawn.update(figures)
        return write_html(*args[:4], figures, *args[5:])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench.report.build, "write_study_html", with_qualitative)
        build_report(grid, root / "runs", root / "results")
    write_index(root / "results")
    return report


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    root = tmp_path_factory.mktemp("html")
    (root / "tiny.yaml").write_text(GRID.replace("Tiny synthetic grid.", DESCRIPTION))
    write_records(load_grid(root / "tiny.yaml"), root / "runs")
    return _build(root)


class _Links(HTMLParser):
    """Every ``src`` and ``href`` value of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]


def links(page: str) -> list[str]:
    parser = _Links()
    parser.feed(page)
    return parser.links


def test_links_are_relative_and_resolve(report: Report) -> None:
    found = links(report.html)
    assert not re.search(r"https?://", report.html)
    assert len(found) > 10
    for link in found:
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc, link
        if parts.path:  # the folder can be moved: every file link stays inside it
            target = (report.study / unquote(parts.path)).resolve()
            assert target.is_file() and target.is_relative_to(report.study.resolve()), link


def test_every_drawn_figure_conventions_and_escaping(report: Report) -> None:
    page = report.html
    assert {p.stem for paths in report.drawn.values() for p in paths} >= {*FIGURES, "qualitative_denoise25"}
    for title, paths in report.drawn.items():
        assert title in page
        for path in paths:
            assert f'href="figures/{path.name}"' in page
        assert f'src="figures/{paths[0].stem}.png"' in page
    qualitative = page.split('<h2 id="qualitative">')[1].split("<h2")[0]
    assert "figures/qualitative_denoise25.png" in qualitative and "figures/ablation.png" not in qualitative
    conventions = page.split('<h2 id="conventions">')[1].split("<h2")[0]
    for text in ("BasicSR/MATLAB", "crop border 0 px", "test counter", "1x3x64x64", "3 seeds: 0, 1, 2",
                 "cpu (cpu0), fp32, batch 1, 2 threads"):
        assert text in conventions
    assert "Tiny &lt;synthetic&gt; grid &amp; &#x27;friends&#x27;." in page and "<synthetic>" not in page
    for text in ("deadbeef", "torch 2.13.0", "mca_dims: none", "options.mca_dims", "ValueError: boom"):
        assert text in page
    assert "](tiny/README.md)" in (report.study.parent / "README.md").read_text()
    assert "](tiny/index.html)" in (report.study.parent / "README.md").read_text()


def test_short_caption_under_the_table_power_in_the_conventions(report: Report) -> None:
    table = report.html.split('<h2 id="table">')[1].split("<h2")[0]
    note = table.split('<p class="note">')[1]
    assert note.startswith("PSNR (dB) and SSIM: mean ± SD over 3 seeds (0, 1, 2; profile smoke)")  # --caption short
    assert "index.html#conventions" in note and "Power (" not in note
    assert "+0.58 [-0.37, +1.53] (inconclusive)" in table
    conventions = report.html.split('<h2 id="conventions">')[1].split("<h2")[0]
    assert "Power (Δ PSNR, denoise25): 3 seeds x 1 test image; pooled SD of the paired differences" in conventions
    assert "minimum detectable effect" in conventions and "(inconclusive) where the interval spans zero" in conventions


def test_every_table_scrolls_sideways(report: Report) -> None:
    page = report.html
    tables = page.count("<table")
    assert tables >= 5 and page.count('<div class="scroll"><table') == tables
    assert re.search(r"\.scroll\{overflow-x:auto", page)


def test_regenerated_atomically_without_stale_figures(report: Report, tmp_path: Path) -> None:
    root = report.study.parent.parent
    for name in ("tiny.yaml", "runs", "results"):
        copy = shutil.copytree if (root / name).is_dir() else shutil.copy
        copy(root / name, tmp_path / name)
    shutil.rmtree(tmp_path / "runs" / "arch")  # no MACs nor throughput: pareto and speed-up not drawn
    before = (tmp_path / "results" / "tiny" / "index.html").stat().st_ino
    again = _build(tmp_path)
    assert again.study.joinpath("index.html").stat().st_ino != before  # replaced by a rename, not rewritten
    assert not list(again.study.rglob(".*.tmp"))
    page = again.html
    for stale in ("pareto", "speedup"):
        assert f"figures/{stale}." not in page
    not_drawn = page.split("<p>Not drawn:</p>")[1].split("</ul>")[0]
    assert "no architecture record (MACs)" in not_drawn and "no student and teacher throughput" in not_drawn
    assert "MACs: not measured" in page


# --- in headless Chromium -----------------------------------------------------------------------


@dataclass
class Loaded:
    """A page loaded from disk, with what the browser reported while loading and using it."""

    page: Any  # playwright.sync_api.Page
    errors: list[str]  # console errors and uncaught exceptions
    requests: list[str]  # every URL requested


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium at :data:`CHROMIUM` through playwright; skipped when either is missing,
    failed instead when ``SKD_REQUIRE_BROWSER=1`` (as in CI)."""
    missing = [] if CHROMIUM.is_file() else [f"Chromium not found at {CHROMIUM}"]
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("the playwright package is not installed")
    if missing:
        message = "; ".join(missing) + f": {INSTALL}"
        if os.environ.get("SKD_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SKD_REQUIRE_BROWSER=1 but {message}", pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def loaded(browser: Any, report: Report) -> Iterator[Loaded]:
    page = browser.new_page()
    result = Loaded(page, [], [])
    page.on("console", lambda m: result.errors.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: result.errors.append(f"page error: {e}"))
    page.on("request", lambda r: result.requests.append(r.url))
    page.goto((report.study / "index.html").as_uri(), wait_until="load")
    yield result
    page.close()


@pytest.mark.browser
def test_page_loads_without_errors_or_network(loaded: Loaded, report: Report) -> None:
    assert loaded.errors == []
    assert all(url.startswith("file://") for url in loaded.requests), loaded.requests
    assert len(loaded.requests) == 1 + len(report.drawn)  # the page and one PNG per figure
    images = loaded.page.evaluate("Array.from(document.images, i => [i.getAttribute('src'), i.naturalWidth])")
    assert sorted(src for src, _ in images) == sorted(f"figures/{p[0].stem}.png" for p in report.drawn.values())
    assert all(width > 0 for _, width in images), images


@pytest.mark.browser
def test_tables_have_rows(loaded: Loaded) -> None:
    rows = loaded.page.evaluate("Array.from(document.querySelectorAll('table.sortable'), "
                                "t => t.tBodies[0].rows.length)")
    assert rows[:2] == [4, 1]  # summary (teacher and three variants), teachers
    assert len(rows) == 5 and all(rows)  # then cells not finished, conventions, run info


@pytest.mark.browser
@pytest.mark.parametrize(("column", "ascending", "descending"), [
    ("PSNR (dB)", ["mca_dims=both", "scratch", "mca_dims=none", "teacher (teacher-smoke)"],
     ["teacher (teacher-smoke)", "mca_dims=none", "scratch", "mca_dims=both"]),
    # numbers by value before text ("(reference)"), missing ("—") last either way
    ("Δ PSNR (dB) [95% CI]", ["mca_dims=none", "mca_dims=both", "scratch", "teacher (teacher-smoke)"],
     ["mca_dims=both", "mca_dims=none", "scratch", "teacher (teacher-smoke)"]),
])
def test_click_header_sorts(loaded: Loaded, column: str, ascending: list[str], descending: list[str]) -> None:
    table = loaded.page.locator("table.sortable").first
    header = table.locator("thead th").nth(HEADERS.index(column))
    variants = table.locator(f"tbody td:nth-child({HEADERS.index('Variant') + 1})")
    assert variants.all_inner_texts() == ["teacher (teacher-smoke)", "mca_dims=none", "mca_dims=both", "scratch"]
    header.locator("button").click()
    assert variants.all_inner_texts() == ascending and header.get_attribute("aria-sort") == "ascending"
    header.locator("button").click()
    assert variants.all_inner_texts() == descending and header.get_attribute("aria-sort") == "descending"
    assert loaded.errors == []


@pytest.mark.browser
def test_wide_summary_table_scrolls_inside_the_page(loaded: Loaded) -> None:
    loaded.page.set_viewport_size({"width": 480, "height": 800})
    box = loaded.page.evaluate("(() => { const d = document.querySelector('div.scroll'); "
                               "return [d.scrollWidth, d.clientWidth, document.documentElement.scrollWidth, "
                               "window.innerWidth]; })()")
    wrapper_content, wrapper, page, window = box
    assert wrapper_content > wrapper  # the table is wider than the page: its wrapper scrolls
    assert page <= window  # the page itself does not run off the right edge
