"""``results/<study>/index.html``: a study's report as one static page that opens from disk
(``file://``) and can be moved with its folder.

Everything the README shows plus the resolved configuration: the summary table (sortable by a click
on a header; every table scrolls sideways when wider than the page), the teachers, every drawn
figure (PNG shown, PNG and its vector twin, SVG or PDF, linked), the figures not drawn,
the unfinished cells, what every number means (:meth:`.Conventions.items`), the run info and the
grid spec. CSS and JS are inline, every link is relative to the study folder, every text is
HTML-escaped and nothing is fetched from the network (a Content-Security-Policy forbids it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import yaml

from skd_core.atomic import atomic_write_text

from .captions import DEFAULT_CAPTION, table_caption
from .conventions import Conventions
from .pages import HTML_PAGE, PAGE, filled
from .records import GridRun, ManifestCell, cell_identities, identity_line
from .tables import HEADERS, render_rows, tie_note, tied_mdes

#: figure file-stem prefixes shown under the qualitative heading (what the distillation does)
QUALITATIVE_PREFIXES = ("qualitative", "error", "attention", "similarity")
#: a cell that starts with a number ("21.75 ± 1.15", "+0.58 [...]", "3/3"; not "40d8..." or a date): right-aligned
NUMBER = re.compile(r"(<strong>)?[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?($|[\s/<])", re.IGNORECASE)
UNFINISHED_COLUMNS = ("label", "task", "seed", "status", "error", "id")
TEACHER_HEADERS = ("Task", "Model", "PSNR (dB)", "SSIM", "Params (M)", "MACs (G)", "Record id")
CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:75em;padding:0 1em;color:#222}
h1,h2,h3{line-height:1.2}nav a{margin-right:1em}code,pre{font-family:ui-monospace,monospace;font-size:13px}
pre{background:#f6f8fa;padding:.8em;overflow:auto}
.scroll{overflow-x:auto;max-width:100%}.scroll caption{position:sticky;left:0;max-width:min(100vw - 3em,75em)}
table{border-collapse:collapse;margin:.8em 0}caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.teacher td{background:#f3f0fa;font-style:italic}
th button{all:unset;cursor:pointer;font-weight:600}th button::after{content:" \\2195"/"";color:#999}
th[aria-sort=ascending] button::after{content:" \\2191"/"";color:#222}
th[aria-sort=descending] button::after{content:" \\2193"/"";color:#222}
figure{margin:1.5em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-weight:600}.note{color:#555}
"""
#: click a header to sort its table's body: numbers (the leading number of "mean ± sd", "+Δ [low, high]"
#: or "3/3") numerically and before text, "—" (missing) last in either direction
SORT_JS = """
function sortKey(text) {
  var t = text.trim();
  if (t === "" || t === "\\u2014") return {rank: 2, value: 0};
  var m = t.match(/^[+-]?(\\d+\\.?\\d*|\\.\\d+)(e[+-]?\\d+)?(?=$|[\\s\\/])/i);
  return m ? {rank: 0, value: parseFloat(m[0])} : {rank: 1, value: t.toLowerCase()};
}
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = Array.from(table.tHead.rows[0].cells);
  heads.forEach(function (th, col) {
    th.querySelector("button").addEventListener("click", function () {
      var sign = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      heads.forEach(function (h) { h.setAttribute("aria-sort", "none"); });
      th.setAttribute("aria-sort", sign > 0 ? "ascending" : "descending");
      var body = table.tBodies[0];
      Array.from(body.rows).map(function (row) { return [sortKey(row.cells[col].textContent), row]; })
        .sort(function (a, b) {
          if (a[0].rank !== b[0].rank || a[0].rank === 2) return a[0].rank - b[0].rank;
          return sign * (a[0].value < b[0].value ? -1 : a[0].value > b[0].value ? 1 : 0);
        })
        .forEach(function (pair) { body.appendChild(pair[1]); });
    });
  });
});
"""


def write_study_html(grid: GridRun, cells: pd.DataFrame, table: pd.DataFrame, table_paths: Sequence[Path],
                     figures: Mapping[str, list[Path]], not_drawn: Mapping[str, str], conventions: Conventions,
                     info: Sequence[tuple[str, str]], root: Path, caption: str = DEFAULT_CAPTION) -> Path:
    """Write ``root/index.html`` atomically; returns its path. ``table``: :func:`.tables.table_frame`,
    ``figures``: title -> written files (PNG shown, its vector twin linked), ``root``: the study folder
    (links relative to it), ``caption``: the summary table's caption length (:data:`.captions.CAPTIONS`;
    the Conventions section lists every convention either way)."""
    title = f"{grid.study}: {grid.description}".rstrip(": ")
    counts = cells["status"].value_counts()
    status = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("done", "failed", "running", "pending"))
    qualitative = {t: p for t, p in figures.items() if p[0].stem.startswith(QUALITATIVE_PREFIXES)}
    plots = {t: p for t, p in figures.items() if t not in qualitative}
    identity = identity_line(cell_identities(cells))
    sections = [("table", "Summary table", _summary(table, conventions, title, identity, cells, caption)),
                ("teachers", "Teachers", _teachers(table)),
                ("figures", "Figures", _figures(plots, not_drawn, root))]
    if qualitative:
        sections.append(("qualitative", "What the distillation does / Qualitative", _figures(qualitative, {}, root)))
    sections += [("unfinished", "Cells not finished", _unfinished(cells)),
                 ("conventions", "Conventions", _rows_table(("Numbers", "Convention"), conventions.items())),
                 ("run-info", "Run info", _rows_table(("Field", "Value"), info)),
                 ("config", "Configuration", _config(grid))]
    files = [*table_paths, root / "records.csv", root / PAGE]
    body = [f"<h1>{_e(grid.study)}</h1>", f"<p>{_e(grid.description or '(no description)')}</p>",
            f"<p>Grid <code>{_e(grid.path)}</code>, profile <code>{_e(grid.profile)}</code>, tasks "
            f"{_e(', '.join(grid.tasks))}, seeds {_e(', '.join(map(str, grid.seeds)))}: {len(cells)} cells "
            f"({_e(status)}).</p>",
            "<p>Files: " + " · ".join(_link(p, root, p.name) for p in files) + "</p>",
            "<nav>" + "".join(f'<a href="#{key}">{_e(name)}</a>' for key, name, _ in sections) + "</nav>",
            *(f'<h2 id="{key}">{_e(name)}</h2>\n{content}' for key, name, content in sections)]
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(body)
            + f"\n<script>{SORT_JS}</script>\n</body>\n</html>\n")
    return atomic_write_text(root / HTML_PAGE, page)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _href(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as a URL path, escaped for an attribute."""
    return _e(quote(path.relative_to(root).as_posix()))


def _link(path: Path, root: Path, text: str) -> str:
    return f'<a href="{_href(path, root)}">{_e(text)}</a>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], caption: str = "",
           row_classes: Sequence[str] = ()) -> str:
    """A sortable ``<table>`` in a horizontally scrolling ``<div class="scroll">`` (a wide table
    scrolls inside the page instead of running off its right edge); ``rows`` hold escaped HTML;
    numeric-looking cells are right-aligned."""
    head = "".join(f'<th scope="col" aria-sort="none"><button type="button">{_e(h)}</button></th>'
                   for h in headers)
    classes = list(row_classes) or [""] * len(rows)
    body = "\n".join(f'<tr class="{_e(cls)}">' + "".join(f'<td class="num">{c}</td>' if NUMBER.match(c)
                                                         else f"<td>{c}</td>" for c in row) + "</tr>"
                     for row, cls in zip(rows, classes, strict=True))
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    return (f'<div class="scroll"><table class="sortable">{cap}<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n'
            "</tbody></table></div>")


def _rows_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    return _table(headers, [[_e(v) for v in row] for row in rows])


def _summary(table: pd.DataFrame, conventions: Conventions, title: str, identity: str, cells: pd.DataFrame,
             kind: str) -> str:
    """The table, its caption (``kind``: short or full; with the tie note) and the machine identity
    line below them."""
    rows = render_rows(table, lambda s: f"<strong>{s}</strong>", _e)
    caption = " ".join(t for t in (table_caption(kind, conventions, cells), tie_note(tied_mdes(table))) if t)
    return (_table(HEADERS, rows, title, list(table["role"])) + f'\n<p class="note">{_e(caption)} '
            "Click a column header to sort; teacher rows are shaded.</p>"
            + (f'\n<p class="note">{_e(identity)}</p>' if identity else ""))


def _teachers(table: pd.DataFrame) -> str:
    teachers = table[table["role"] == "teacher"]
    if not len(teachers):
        return "<p>None: no distilled cell finished, and the grid trains no teacher of its own (train_teacher).</p>"
    rendered = [dict(zip(HEADERS, r, strict=True)) for r in render_rows(teachers, str, _e)]
    rows = [[r["Task"], _e(model), r["PSNR (dB)"], r["SSIM"], r["Params (M)"], r["MACs (G)"], _e(tid)]
            for r, model, tid in zip(rendered, teachers["model"], teachers["teacher_id"], strict=True)]
    return _table(TEACHER_HEADERS, rows)


def _figures(figures: Mapping[str, list[Path]], not_drawn: Mapping[str, str], root: Path) -> str:
    parts = []
    for title, paths in figures.items():
        shown = next((p for p in paths if p.suffix == ".png"), paths[0])
        links = " · ".join(_link(p, root, p.suffix[1:].upper()) for p in paths)
        parts.append(f'<figure><figcaption>{_e(title)} <span class="note">({links})</span></figcaption>'
                     f'<img src="{_href(shown, root)}" alt="{_e(title)}"></figure>')
    if not_drawn:
        parts.append("<p>Not drawn:</p><ul>" + "".join(f"<li>{_e(t)}: {_e(why)}</li>" for t, why in not_drawn.items())
                     + "</ul>")
    return "\n".join(parts) or "<p>None.</p>"


def _unfinished(cells: pd.DataFrame) -> str:
    unfinished = cells[cells["status"] != "done"]
    if not len(unfinished):
        return f"<p>None: all {len(cells)} cells finished.</p>"
    columns = [c for c in UNFINISHED_COLUMNS if c in unfinished]
    return (_rows_table(columns, filled(unfinished[columns]).to_numpy().tolist())
            + "<p>They are left out of the means (see the Seeds column); <code>skd-bench run</code> runs pending "
              "cells and <code>--force</code> reruns failed ones.</p>")


def _config(grid: GridRun) -> str:
    """The grid spec as loaded, then the resolved config of each (variant, task): the ``config`` its
    records store; the seeds of one variant differ only in ``seed``."""
    variants: dict[tuple[str, str], list[ManifestCell]] = {}
    for cell in grid.cells:
        variants.setdefault((cell.label, cell.task), []).append(cell)
    details = [f"<details><summary>{_e(label)} · {_e(task)} · seeds {_e(', '.join(str(c.seed) for c in group))}"
               f"</summary><pre>{_e(yaml.safe_dump(group[0].config, sort_keys=False, allow_unicode=True))}"
               "</pre></details>" for (label, task), group in variants.items()]
    return (f"<p>Grid spec from <code>{_e(grid.path)}</code>, run with profile <code>{_e(grid.profile)}</code>:</p>"
            f"<pre>{_e(yaml.safe_dump(grid.spec, sort_keys=False, allow_unicode=True))}</pre>"
            "<p>Resolved configuration of each variant and task (the <code>config</code> of its records; its seeds "
            "differ only in <code>seed</code>):</p>\n" + "\n".join(details))
