"""Markdown pages: ``results/<study>/README.md`` (table, figures, unfinished cells, run info) and the
index ``results/README.md``, rebuilt from whatever study pages exist so reports accumulate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from skd_core.atomic import atomic_write_text

from .records import GridRun


def filled(values: pd.DataFrame | pd.Series, fill: str = "") -> pd.DataFrame | pd.Series:
    """``values`` with missing entries replaced by ``fill`` (as objects: a float column of NaNs takes a
    string without pandas' incompatible-fill warning)."""
    return values.astype(object).where(values.notna(), fill)


PAGE = "README.md"
#: hand-written findings the index shows first (``results/NOTES.md``), kept across reports
NOTES = "NOTES.md"
HTML_PAGE = "index.html"  # the same study as one static page, written by :mod:`.html`
#: run-info line -> provenance fields (flattened record columns) it shows
RUN_INFO = {
    "machine": ("provenance.machine.node", "provenance.machine.processor", "provenance.machine.cpu_count",
                "provenance.machine.system", "provenance.machine.machine", "provenance.machine.cuda_device"),
    "code identity (hash of the sources a result's computation imports)": ("code",),
    "git commit": ("provenance.git.commit",),
    "git branch": ("provenance.git.branch",),
    "git dirty": ("provenance.git.dirty",),
}
VERSION_PREFIX = "provenance.versions."


def run_info(grid: GridRun, frames: Sequence[pd.DataFrame], runs_dir: Path) -> list[tuple[str, str]]:
    """``(field, value)`` lines from the provenance stored in the records of ``frames`` (cells and
    teachers); a field whose records disagree lists every distinct value, separated by ``|``."""
    filled = [f for f in frames if len(f)]
    rows = pd.concat(filled, ignore_index=True) if filled else pd.DataFrame()

    def distinct(columns: Sequence[str]) -> str:
        present = [c for c in columns if c in rows]
        if not present:
            return "unknown"
        combos = dict.fromkeys(", ".join(str(v) for v in row if not pd.isna(v))
                               for row in rows[present].itertuples(index=False))
        return " | ".join(c for c in combos if c) or "unknown"

    versions = sorted(c for c in rows if c.startswith(VERSION_PREFIX))
    finished = pd.to_numeric(rows.get("finished", pd.Series(dtype=float)), errors="coerce").dropna()
    when = " to ".join(dict.fromkeys(_utc(t) for t in (finished.min(), finished.max()))) if len(finished) else "unknown"
    return [("profile", grid.profile), ("grid file", str(grid.path)), ("records", str(runs_dir)),
            *[(name, distinct(cols)) for name, cols in RUN_INFO.items()],
            ("versions", "; ".join(f"{c[len(VERSION_PREFIX):]} {distinct([c])}" for c in versions) or "unknown"),
            ("records finished (UTC)", when),
            ("report written (UTC)", _utc(dt.datetime.now(dt.timezone.utc).timestamp()))]


def _utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(float(seconds), dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def study_page(grid: GridRun, cells: pd.DataFrame, table_md: str, tables: Sequence[Path],
               figures: Mapping[str, list[Path]], not_drawn: Mapping[str, str], info: Sequence[tuple[str, str]],
               root: Path) -> str:
    """The study's README: summary counts, the table, links to every table and figure (paths
    relative to ``root``, the study folder), the unfinished cells and the run info."""
    counts = cells["status"].value_counts()
    status = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("done", "failed", "running", "pending"))
    lines = [f"# {grid.study}", "", grid.description or "(no description)", "",
             f"Grid `{grid.path}`, profile `{grid.profile}`, tasks {', '.join(grid.tasks)}, seeds "
             f"{', '.join(map(str, grid.seeds))}: {len(cells)} cells ({status}).", "", "## Table", "", table_md,
             "Files: " + " · ".join(f"[{p.name}]({_rel(p, root)})" for p in tables)
             + f" · per-cell records: [records.csv]({_rel(root / 'records.csv', root)})", "", "## Figures", ""]
    for title, paths in figures.items():
        png = next(p for p in paths if p.suffix == ".png")
        links = " · ".join(f"[{p.suffix[1:]}]({_rel(p, root)})" for p in paths)
        lines += [f"### {title}", "", f"![{title}]({_rel(png, root)})", "", links, ""]
    lines += [f"- not drawn: {title}: {why}" for title, why in not_drawn.items()]
    unfinished = cells[cells["status"] != "done"]
    lines += ["", "## Cells not finished", ""]
    if len(unfinished):
        columns = [c for c in ("label", "task", "seed", "status", "error", "id") if c in unfinished]
        lines += [tabulate(filled(unfinished[columns]).to_numpy().tolist(), headers=columns, tablefmt="github"),
                  "", "They are left out of the means (see the Seeds column); `skd-bench run` runs pending "
                  "cells and `--force` reruns failed ones."]
    else:
        lines.append(f"None: all {len(cells)} cells finished.")
    lines += ["", "## Run info", "", tabulate(info, headers=("field", "value"), tablefmt="github"), ""]
    return "\n".join(lines)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def write_index(results_dir: Path) -> Path:
    """Rebuild ``results_dir/README.md``: the hand-written :data:`NOTES` first where present, then a
    link to every ``results_dir/<study>/README.md`` (and its ``index.html`` where written), its
    tables and its figures."""
    lines = ["# Results", "", "Reports written by `skd-bench report GRID`; one section per study.", ""]
    notes = results_dir / NOTES
    if notes.is_file():  # hand-written findings, kept across reports
        lines += [notes.read_text(encoding="utf-8").strip(), ""]
    for page in sorted(results_dir.glob(f"*/{PAGE}")):
        study = page.parent
        text = page.read_text().splitlines()
        description = text[2] if len(text) > 2 else ""
        tables = sorted((study / "tables").glob("*"))
        figures = sorted((study / "figures").glob("*.png"))
        html = f" · [HTML page]({study.name}/{HTML_PAGE})" if (study / HTML_PAGE).is_file() else ""
        lines += [f"## [{study.name}]({study.name}/{PAGE}){html}", "", description, "",
                  "Tables: " + (" · ".join(f"[{p.name}]({_rel(p, results_dir)})" for p in tables) or "none"),
                  "", "Figures: " + (" · ".join(f"[{p.stem}]({_rel(p, results_dir)})" for p in figures) or "none"), ""]
    others = sorted(p for p in [*results_dir.glob("*.md"), *results_dir.glob("tables/*.md")]
                    if p.name not in (PAGE, NOTES))
    if others:  # pages written by other commands (complexity table, reference-run notes)
        lines += ["## Other pages", "", *(f"- [{_rel(p, results_dir)}]({_rel(p, results_dir)})" for p in others), ""]
    return atomic_write_text(results_dir / PAGE, "\n".join(lines))
