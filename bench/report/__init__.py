"""``skd-bench report``: a grid's records -> tables (Markdown, LaTeX, CSV), figures (PNG with an SVG
or PDF twin) and pages (``README.md``, a static ``index.html``) under ``results/<study>/``, plus the index
``results/README.md``.

Modules, one job each: :mod:`.records` (records -> pandas), :mod:`.measures` (per-architecture
complexity and throughput), :mod:`.stats` (means, intervals, paired differences, Pareto front),
:mod:`.conventions` (what every number means), :mod:`.captions` (short or full table captions),
:mod:`.tables`, :mod:`.figures`, :mod:`.colours` (the one palette of every figure), :mod:`.pages`,
:mod:`.html` (the static page) and :mod:`.build` (puts them together).
"""

from __future__ import annotations

from .build import build_report
from .pages import write_index

__all__ = ["build_report", "write_index"]
