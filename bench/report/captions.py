"""Table captions at the two lengths ``skd-bench report --caption`` offers: ``full``, every
convention (:meth:`.Conventions.caption`), and ``short`` (the default), two sentences fit for a
paper's table: the unit, the seeds, the device and dtype the cells ran on, how the methods' weights
were set, and where the rest is (the study page's Conventions section lists every convention in
either case)."""

from __future__ import annotations

import pandas as pd

from bench.spec.grid import REFERENCE_LABEL
from skd_core.errors import ConfigError

from .conventions import Conventions, distinct_text
from .pages import HTML_PAGE, filled
from .stats import LEVEL

CAPTIONS = ("short", "full")
DEFAULT_CAPTION = "short"
#: where the short caption points for every convention
CONVENTIONS_ANCHOR = f"{HTML_PAGE}#conventions"


def check_caption(kind: str) -> str:
    """``kind`` when it is one of :data:`CAPTIONS`, else a :class:`ConfigError` naming them."""
    if kind not in CAPTIONS:
        raise ConfigError(f"--caption {kind!r}: expected one of {', '.join(CAPTIONS)}")
    return kind


def table_caption(kind: str, conv: Conventions, cells: pd.DataFrame) -> str:
    """The summary table's caption: :meth:`.Conventions.caption` (``full``) or :func:`short_caption`."""
    return conv.caption() if check_caption(kind) == "full" else short_caption(conv, cells)


def short_caption(conv: Conventions, cells: pd.DataFrame, delta: bool = True) -> str:
    """Two sentences: PSNR (dB) and SSIM as mean ± SD over the seeds (how many, which, the profile),
    Δ with its interval (``delta``; else where those are); the device and training dtype of the
    finished cells (``cells``: :func:`.records.cell_frame`), how the weights were set and where
    every convention is."""
    n = len(conv.seeds)
    weights = weights_short(conv.weights)
    diff = (f"Δ: paired difference to the {REFERENCE_LABEL} student, {LEVEL:.0%} CI" if delta else
            f"differences to {REFERENCE_LABEL} with {LEVEL:.0%} CIs: tables/summary.md")
    return (f"PSNR (dB) and SSIM: mean ± SD over {n} seed{'s' if n != 1 else ''} "
            f"({', '.join(map(str, conv.seeds))}; profile {conv.profile}); {diff}. Trained and scored on "
            f"{device_text(cells)}, {dtype_text(cells)}{f'; {weights}' if weights else ''}; every convention "
            f"(scoring, MACs, power, tuning): {CONVENTIONS_ANCHOR}.")


def weights_short(weights: str) -> str:
    """The first clause of :func:`.conventions.weights_text`, lower-cased: ``methods skd tuned by
    ...`` -> ``weights tuned``; empty when the methods have no options."""
    if not weights:
        return ""
    if "tuned by" in weights:
        return "weights tuned" + (" (some untuned)" if "untuned" in weights else "")
    return "literature/default weights, untuned"


def device_text(cells: pd.DataFrame) -> str:
    """The GPU(s) the finished cells' machines had (their provenance), else ``CPU (<processor>)``."""
    done = cells[cells["status"] == "done"]
    gpus = list(dict.fromkeys(_gpu(done)[lambda g: g != ""]))
    return " / ".join(gpus) if gpus else f"CPU ({distinct_text(done, 'provenance.machine.processor', str)})"


def dtype_text(cells: pd.DataFrame) -> str:
    """``fp32``, or ``bf16 autocast`` where a finished cell trained with ``amp: bf16`` on a GPU."""
    done = cells[cells["status"] == "done"]
    amp = filled(done["config.train.amp"], "none").astype(str) if "config.train.amp" in done else ""
    return "bf16 autocast" if ((amp == "bf16") & (_gpu(done) != "")).any() else "fp32"


def _gpu(done: pd.DataFrame) -> pd.Series:
    """Each cell's machine's GPU name, ``""`` where it had none."""
    column = "provenance.machine.cuda_device"
    return filled(done[column]).astype(str) if column in done else pd.Series("", index=done.index)
