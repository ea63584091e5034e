"""The summary table of a study in three formats: Markdown, LaTeX (booktabs) and CSV.

Rows: per task the teacher reference row(s), then one row per variant (label); columns: seeds
finished/planned, PSNR (dB) and SSIM as mean ± std, Δ to the scratch student with its paired 95%
interval, params (M) and MACs (G). The best student value per column and task is bold (Markdown,
LaTeX) or flagged in a ``best_*`` column (CSV), except where the leading students of PSNR or Δ PSNR
differ by less than the task's minimum detectable effect: then they are followed by :data:`TIE` and
none is bold (CSV: ``tie_*`` columns). A Δ whose interval spans zero is followed by
:data:`INCONCLUSIVE` (CSV: ``inconclusive_*`` columns).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from tabulate import tabulate

from bench.spec.grid import REFERENCE_LABEL

from .stats import best_flags

HEADERS = ("Task", "Variant", "Seeds", "PSNR (dB)", "SSIM", "Δ PSNR (dB) [95% CI]", "Δ SSIM [95% CI]",
           "Params (M)", "MACs (G)")
#: rendered column -> the summary column whose best flag makes it bold
BOLD = {"PSNR (dB)": "psnr_mean", "SSIM": "ssim_mean", "Δ PSNR (dB) [95% CI]": "d_psnr",
        "Δ SSIM [95% CI]": "d_ssim", "Params (M)": "params_M", "MACs (G)": "macs_G"}
MISSING = "—"
INCONCLUSIVE = "(inconclusive)"
TIE = "(tie)"
#: maximised dB column -> the study-level column (:mod:`.power`) holding its task's minimum detectable
#: effect (dB), within which the leading students tie
TIE_MDE = {"psnr_mean": "power_mde_psnr", "d_psnr": "power_mde_psnr"}
LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                 "±": r"$\pm$", "Δ": r"$\Delta$", "—": "--", "≤": r"$\leq$", "†": r"$^\dagger$"}


def table_frame(summary: pd.DataFrame, teachers: pd.DataFrame) -> pd.DataFrame:
    """The table as numbers (the CSV): per task the teacher rows (``role`` teacher) then the student
    rows of ``summary`` (:func:`.stats.summarise` plus ``macs_G`` and any study-level power columns),
    with ``best_*`` and ``tie_*`` flags (:func:`tie_flags`, with the power columns' MDE)."""
    best, ties = tie_flags(summary, best_flags(summary), {c: summary[m] for c, m in TIE_MDE.items() if m in summary},
                           "task")
    students = pd.concat([summary.assign(role="student"), best, ties], axis=1)
    parts = []
    for task, group in students.groupby("task", sort=False):
        teacher = teachers[teachers["task"] == task]
        parts.append(pd.DataFrame({
            "role": "teacher", "task": task, "label": [f"teacher ({m})" for m in teacher["model"]],
            "model": teacher["model"].to_numpy(), "n_done": 1, "n_cells": 1,
            "psnr_mean": teacher["psnr"].astype(float).to_numpy(),
            "ssim_mean": teacher["ssim"].astype(float).to_numpy(),
            "params_M": teacher["params"].astype(float).to_numpy() / 1e6,
            "macs_G": teacher["macs_G"].astype(float).to_numpy(), "teacher_id": teacher["id"].to_numpy()}))
        parts.append(group)
    table = pd.concat([p for p in parts if len(p)], ignore_index=True)
    flags = [c for c in table if c.startswith(("best_", "tie_"))]
    table[flags] = table[flags].fillna(False).astype(bool)
    return table.reindex(columns=["role", *[c for c in students if c != "role"], "teacher_id"])


def render_rows(table: pd.DataFrame, bold: Callable[[str], str], escape: Callable[[str], str] = str) -> list[list[str]]:
    """The table's cells as text in :data:`HEADERS` order, each passed through ``escape``; ``bold``
    marks the best cells, :data:`TIE` follows tied leaders."""
    rows = []
    for _, r in table.iterrows():
        student = r["role"] == "student"
        is_ref = student and r["label"] == REFERENCE_LABEL
        cells = {
            "Task": r["task"], "Variant": _variant(r),
            "Seeds": f"{int(r['n_done'])}/{int(r['n_cells'])}" if student else "teacher",
            "PSNR (dB)": _mean_std(r["psnr_mean"], r.get("psnr_std"), 2),
            "SSIM": _mean_std(r["ssim_mean"], r.get("ssim_std"), 4),
            "Δ PSNR (dB) [95% CI]": _diff(r, "d_psnr", 2, is_ref, student),
            "Δ SSIM [95% CI]": _diff(r, "d_ssim", 4, is_ref, student),
            "Params (M)": _number(r["params_M"]), "MACs (G)": _number(r["macs_G"]),
        }
        rows.append([mark(escape(cells[h]), r, BOLD.get(h), bold) for h in HEADERS])
    return rows


def mark(text: str, row: Mapping[str, Any], column: str | None, bold: Callable[[str], str]) -> str:
    """``text`` followed by :data:`TIE` where ``row`` has ``tie_<column>``, else bold where it has
    ``best_<column>``; unchanged without ``column``."""
    if column is None:
        return text
    if bool(row.get(f"tie_{column}", False)):
        return f"{text} {TIE}"
    return bold(text) if bool(row.get(f"best_{column}", False)) else text


def tie_flags(frame: pd.DataFrame, best: pd.DataFrame, mde: Mapping[str, pd.Series],
              by: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(best, ties)``: for each ``column`` of ``mde`` (a maximised dB column of ``frame``;
    ``mde[column]``: the minimum detectable effect in dB on each row), the rows of a ``by`` group less
    than the group's MDE below its best value lead it; where ``best`` (:func:`.stats.best_flags`)
    marks a best and two rows or more lead, they get ``tie_<column>`` and the group's
    ``best_<column>`` is cleared. No tie where the MDE is unknown (NaN); ``best`` is not modified."""
    best, ties = best.copy(), pd.DataFrame(index=frame.index)
    for column, limits in mde.items():
        flag = f"best_{column}"
        if column not in frame or flag not in best:
            continue
        tie = pd.Series(False, index=frame.index)
        for _, group in frame.groupby(by, sort=False):
            values, limit = group[column].astype(float).dropna(), limits.reindex(group.index).dropna()
            if not len(limit) or not best.loc[group.index, flag].any():
                continue
            leaders = values.index[values.max() - values < float(limit.iloc[0])]
            if len(leaders) > 1:
                tie[leaders] = True
                best.loc[group.index, flag] = False
        ties[f"tie_{column}"] = tie
    return best, ties


def task_mdes(summary: pd.DataFrame) -> dict[str, float]:
    """Task -> the study's minimum detectable effect of Δ PSNR (dB; ``power_mde_psnr``, see
    :func:`.power.with_power_columns`); empty without the power columns."""
    if "power_mde_psnr" not in summary:
        return {}
    return {str(t): float(m) for t, m in summary.groupby("task", sort=False)["power_mde_psnr"].first().items()}


def tied_mdes(table: pd.DataFrame) -> dict[str, float]:
    """Task -> its minimum detectable effect (dB) for each task of ``table`` (:func:`table_frame`)
    with a :data:`TIE`, in table order."""
    flags = [c for c in table if c.startswith("tie_")]
    tied = table[table[flags].any(axis=1)] if flags else table.iloc[:0]
    return {str(task): float(mde) for task, mde in zip(tied["task"], tied.get("power_mde_psnr", []), strict=True)}


def tie_note(mdes: Mapping[str, float]) -> str:
    """The caption's sentence on :data:`TIE` for the tied tasks' MDEs (``mdes``: task -> dB); empty
    without a tie."""
    if not mdes:
        return ""
    within = ", ".join(f"{task}: {mde:.2f} dB" for task, mde in mdes.items())
    return (f"{TIE}: the leading students differ by less than the study's minimum detectable effect ({within}), "
            "so none of them is bold (CSV: tie_* columns).")


def markdown_table(table: pd.DataFrame, caption: str, title: str) -> str:
    """GitHub Markdown: a title line, the table (best in bold) and the caption below it."""
    body = tabulate(render_rows(table, lambda s: f"**{s}**"), headers=HEADERS, tablefmt="github",
                    disable_numparse=True)
    return f"**{title}**\n\n{body}\n\n{caption}\n"


def latex_table(table: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``), best in ``\\textbf``."""
    rows = render_rows(table, lambda s: f"\\textbf{{{s}}}", latex_escape)
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             f"\\caption{{{latex_escape(caption)}}}", f"\\label{{tab:{label}}}",
             f"\\begin{{tabular}}{{ll{'r' * (len(HEADERS) - 2)}}}", r"\toprule",
             " & ".join(latex_escape(h) for h in HEADERS) + r" \\", r"\midrule"]
    previous_role = None
    for role, row in zip(table["role"], rows, strict=True):
        if previous_role == "student" and role == "teacher":
            lines.append(r"\midrule")
        lines.append(" & ".join(row) + r" \\")
        previous_role = role
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters (and ±, Δ, —, ≤, †) escaped."""
    return re.sub("|".join(map(re.escape, LATEX_ESCAPES)), lambda m: LATEX_ESCAPES[m.group()], str(text))


def csv_table(table: pd.DataFrame) -> str:
    """The numbers behind the table, one row per table row, ``best_*`` and ``inconclusive_*`` flag
    columns included (``inconclusive_*`` empty where there is no interval)."""
    return table.to_csv(index=False, float_format="%.6g")


def _variant(row: Mapping[str, Any]) -> str:
    """The label, with its loss-balance marks in brackets (``skd [dominant: contrastive]``)."""
    marks = row.get("balance")
    return f"{row['label']} [{marks}]" if isinstance(marks, str) and marks else str(row["label"])


def _number(value: Any) -> str:
    return MISSING if _nan(value) else f"{float(value):.4g}"


def _mean_std(mean: Any, std: Any, digits: int) -> str:
    if _nan(mean):
        return MISSING
    return f"{mean:.{digits}f}" if _nan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _diff(row: Mapping[str, Any], name: str, digits: int, is_reference: bool, student: bool) -> str:
    if is_reference:
        return "(reference)"
    mean, low, high = row.get(name), row.get(f"{name}_low"), row.get(f"{name}_high")
    if not student or _nan(mean):
        return MISSING
    if _nan(low):
        return f"{mean:+.{digits}f} (n={int(row['n_pairs'])})"
    text = f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"
    flag = row.get(name.replace("d_", "inconclusive_", 1))
    return f"{text} {INCONCLUSIVE}" if not pd.isna(flag) and bool(flag) else text


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
