"""A multi-task study in the paper's layout: methods as rows (the teacher first, then each variant
in grid order), one column group per task (PSNR in dB and SSIM, mean ± sample SD over seeds, each
scored in its task's convention), then the student's params (M) and MACs (G), which do not depend on the task.
Markdown (one ``PSNR / SSIM`` column per task), LaTeX (booktabs, a ``\\multicolumn`` header per task)
and CSV. Written only for studies with two tasks or more; one task is the summary table's shape.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from tabulate import tabulate

from .captions import check_caption, short_caption
from .conventions import Conventions, distinct_text
from .stats import BEST, best_flags
from .tables import MISSING, latex_escape, mark, task_mdes, tie_flags

STEM = "paper_layout"
#: per task: layout column -> (summary column, the better direction and printed decimals)
TASK_COLUMNS = {"psnr": ("psnr_mean", BEST["psnr_mean"]), "ssim": ("ssim_mean", BEST["ssim_mean"])}
#: per task: layout column -> the summary column of its sample SD over seeds (``<task>.<name>_sd``)
SD_COLUMNS = {"psnr": "psnr_std", "ssim": "ssim_std"}
COST_COLUMNS = {"params_M": "Params (M)", "macs_G": "MACs (G)"}
#: marks a student value averaged over fewer seeds than planned
FEWER = "†"
#: how a training schedule reads, from the ``config.train.*`` fields of the records
SCHEDULE = "{steps} steps, batch {batch}, {crop} px crops, {optimizer} at lr {lr}, {schedule} to {min_lr} after " \
           "{warmup_steps} warm-up steps"


def layout_frame(summary: pd.DataFrame, teachers: pd.DataFrame, tasks: Sequence[str]) -> pd.DataFrame:
    """The table as numbers (the CSV): one row per teacher model, then one per label of ``summary``
    (:func:`.stats.summarise` with ``macs_G``) in grid order; columns role, label, model, then per
    task ``<task>.psnr`` (dB), ``<task>.psnr_sd``, ``<task>.ssim``, ``<task>.ssim_sd`` (sample SD over
    seeds; NaN below two and for teachers), ``<task>.n_done``, ``<task>.n_cells``, then
    ``params_M``, ``macs_G``, ``best_<column>`` flags (best student per column) and ``tie_<task>.psnr``
    flags (:func:`.tables.tie_flags`: leaders within the task's minimum detectable effect, not bold)."""
    teacher_rows = teachers.assign(psnr_mean=teachers["psnr"].astype(float), ssim_mean=teachers["ssim"].astype(float),
                                   params_M=teachers["params"].astype(float) / 1e6, n_done=1, n_cells=1)
    rows = [_row("teacher", f"teacher ({model})", model, group, tasks)
            for model, group in teacher_rows.groupby("model", sort=False)]
    rows += [_row("student", label, group["model"].iloc[0], group, tasks)
             for label, group in summary.groupby("label", sort=False)]
    frame = pd.DataFrame(rows)
    best = {**{f"{t}.{c}": rule for t in tasks for c, (_, rule) in TASK_COLUMNS.items()},
            **{c: BEST[c] for c in COST_COLUMNS}}
    students = frame[frame["role"] == "student"]
    mdes = task_mdes(summary)
    flags, ties = tie_flags(students, best_flags(students, best, by="role"),
                            {f"{t}.psnr": pd.Series(mdes[t], index=students.index) for t in tasks if t in mdes}, "role")
    return pd.concat([frame, *(f.reindex(frame.index, fill_value=False).astype(bool) for f in (flags, ties))], axis=1)


def _row(role: str, label: str, model: str, by_task: pd.DataFrame, tasks: Sequence[str]) -> dict[str, Any]:
    """One layout row from summary-shaped rows of one method (a row per task)."""
    per_task = by_task.drop_duplicates("task").set_index("task")
    row: dict[str, Any] = {"role": role, "label": label, "model": model}
    for task in tasks:
        found = per_task.loc[task] if task in per_task.index else None
        for name, (column, _) in TASK_COLUMNS.items():
            row[f"{task}.{name}"] = float(found[column]) if found is not None else math.nan
            sd = found.get(SD_COLUMNS[name], math.nan) if found is not None else math.nan
            row[f"{task}.{name}_sd"] = math.nan if pd.isna(sd) else float(sd)
        for name in ("n_done", "n_cells"):
            row[f"{task}.{name}"] = int(found[name]) if found is not None else 0
    for column in COST_COLUMNS:
        values = by_task[column].astype(float).dropna()
        row[column] = float(values.iloc[0]) if len(values) else math.nan
    return row


def headers(tasks: Sequence[str]) -> list[str]:
    """Markdown headers: the method, one ``<task>: PSNR (dB) / SSIM`` column per task, the costs."""
    return ["Method", *(f"{task}: PSNR (dB) / SSIM" for task in tasks), *COST_COLUMNS.values()]


def render_cells(row: pd.Series, tasks: Sequence[str], bold: Callable[[str], str],
                 escape: Callable[[str], str] = str) -> list[str]:
    """The row's texts, each passed through ``escape``: label, per task PSNR then SSIM as mean ± SD
    (``†`` when fewer seeds finished than planned), params, MACs; ``bold`` marks the best student values
    (:data:`.tables.TIE` follows tied leaders)."""
    texts = [escape(str(row["label"]))]
    for task in tasks:
        fewer = FEWER if _fewer(row, task) else ""
        for name, (_, (_, digits)) in TASK_COLUMNS.items():
            text = _mean_sd(row[f"{task}.{name}"], row.get(f"{task}.{name}_sd", math.nan), digits) + fewer
            texts.append(mark(escape(text), row, f"{task}.{name}", bold))
    texts += [mark(escape(_fixed(row[c], 4, general=True)), row, c, bold) for c in COST_COLUMNS]
    return texts


def _fewer(row: pd.Series, task: str) -> bool:
    """Whether a student's values in ``task`` come from fewer seeds than planned (but some)."""
    return row["role"] == "student" and 0 < row[f"{task}.n_done"] < row[f"{task}.n_cells"]


def _mean_sd(mean: float, sd: float, digits: int) -> str:
    """``30.25 ± 0.07``; the mean alone without an SD (one seed, a teacher)."""
    text = _fixed(mean, digits)
    return text if math.isnan(mean) or pd.isna(sd) else f"{text} ± {sd:.{digits}f}"


def _fixed(value: float, digits: int, general: bool = False) -> str:
    if math.isnan(value):
        return MISSING
    return f"{value:.{digits}g}" if general else f"{value:.{digits}f}"


def markdown_layout(frame: pd.DataFrame, tasks: Sequence[str], caption: str, title: str) -> str:
    """GitHub Markdown: a title line, one ``PSNR / SSIM`` column per task (best in bold), the caption."""
    rows = []
    for _, row in frame.iterrows():
        texts = render_cells(row, tasks, lambda s: f"**{s}**")
        pairs = [f"{texts[1 + 2 * i]} / {texts[2 + 2 * i]}" for i in range(len(tasks))]
        rows.append([texts[0], *pairs, *texts[1 + 2 * len(tasks):]])
    body = tabulate(rows, headers=headers(tasks), tablefmt="github", disable_numparse=True)
    return f"**{title}**\n\n{body}\n\n{caption}\n"


def latex_layout(frame: pd.DataFrame, tasks: Sequence[str], caption: str, label: str) -> str:
    """A booktabs ``table`` (needs ``\\usepackage{booktabs}``): a ``\\multicolumn`` header and a
    ``\\cmidrule`` per task over its PSNR and SSIM columns, a rule below the teacher rows, best in
    ``\\textbf``."""
    columns = 1 + 2 * len(tasks) + len(COST_COLUMNS)
    groups = " & ".join(f"\\multicolumn{{2}}{{c}}{{{latex_escape(task)}}}" for task in tasks)
    rules = " ".join(f"\\cmidrule(lr){{{2 + 2 * i}-{3 + 2 * i}}}" for i in range(len(tasks)))
    names = ["Method", *(["PSNR (dB)", "SSIM"] * len(tasks)), *COST_COLUMNS.values()]
    lines = [r"\begin{table}[t]", r"\centering", r"\small", f"\\caption{{{latex_escape(caption)}}}",
             f"\\label{{tab:{label}-paper-layout}}", f"\\begin{{tabular}}{{l{'r' * (columns - 1)}}}", r"\toprule",
             f" & {groups}{' &' * len(COST_COLUMNS)} \\\\", rules,
             " & ".join(latex_escape(n) for n in names) + r" \\", r"\midrule"]
    previous = None
    for _, row in frame.iterrows():
        if previous == "teacher" and row["role"] == "student":
            lines.append(r"\midrule")
        lines.append(" & ".join(render_cells(row, tasks, lambda s: f"\\textbf{{{s}}}", latex_escape)) + r" \\")
        previous = row["role"]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def csv_layout(frame: pd.DataFrame) -> str:
    """The numbers behind the table, one row per table row, ``best_*`` flag columns included."""
    return frame.to_csv(index=False, float_format="%.6g")


def layout_caption(conv: Conventions, cells: pd.DataFrame, teachers: pd.DataFrame, frame: pd.DataFrame,
                   kind: str = "full") -> str:
    """``full``: every convention of the layout: seeds per cell (and why that many, when the grid
    says), test sets and scoring per task (unit dB), params, MACs and their input size, the
    teacher's schedule, how the methods were configured and their weights chosen (tuning: trials,
    split, budget), where the confidence intervals and the study's power are, and what bold means;
    ``short``: :func:`.captions.short_caption`, the ``†`` mark where used and what bold means."""
    fewer = any(_fewer(row, task) for _, row in frame.iterrows() for task in conv.scoring)
    if check_caption(kind) == "short":
        marks = [f"{FEWER}: fewer seeds finished."] if fewer else []
        return " ".join([short_caption(conv, cells, delta=False), *marks, "Bold: best student per column."])
    items = dict(conv.items())
    seeds = (f"Mean ± sample SD over seeds: {len(conv.seeds)} per cell (seeds {', '.join(map(str, conv.seeds))}; "
             f"profile {conv.profile})"
             + (f"; {FEWER}: fewer finished (finished/planned in the summary table)." if fewer else "."))
    if conv.seeds_why:
        seeds += f" Seeds: {conv.seeds_why.strip()}"
    return " ".join([seeds, items["PSNR (dB), SSIM"], items["Params (M)"], items["MACs (G)"], _teacher_text(teachers),
                     methods_text(cells), *([conv.weights] if conv.weights else []),
                     "Differences to scratch with their 95 % confidence intervals, and each task's minimum detectable "
                     "effect, are in the summary table (tables/summary.md).",
                     "Bold (CSV: best_* columns): best student per column (highest PSNR and SSIM; lowest params and "
                     "MACs), marked only where the values differ."])


def _teacher_text(teachers: pd.DataFrame) -> str:
    """Which teacher each task's first row is, and its schedule (trained steps, or a checkpoint)."""
    if not len(teachers):
        return "Teacher: none trained or used."
    tasks: dict[str, list[str]] = {}
    for task, model, steps in zip(teachers["task"], teachers["model"], teachers["steps"], strict=True):
        tasks.setdefault(f"{model}, " + ("a checkpoint" if pd.isna(steps) else f"{int(steps)} steps"), []).append(task)
    per_task = "; ".join(f"{text} ({', '.join(names)})" for text, names in tasks.items())
    return f"Teacher (first row): each task's reference on the teacher's own schedule: {per_task}."


def methods_text(cells: pd.DataFrame) -> str:
    """How the variants were configured, from the finished cells' records: the student(s), the
    training schedule, and the options that tell variants of one method apart."""
    done = cells[cells["status"] == "done"]
    students = done.groupby("label", sort=False)["student"].first()
    who = (f"the same student ({students.iloc[0]})" if students.nunique() == 1
           else "its student (" + ", ".join(f"{label}: {s}" for label, s in students.items()) + ")")
    fields = re.findall(r"\{(\w+)\}", SCHEDULE)
    schedule = SCHEDULE.format(**{key: distinct_text(done, f"config.train.{key}", _number) for key in fields})
    text = (f"Methods: {', '.join(students.index)}; each trains {who} on the student schedule ({schedule}); "
            "options as recorded per cell (records.csv, config.options.*)")
    differ = _distinguishing_options(done)
    return text + (f"; variants of one method differ in: {'; '.join(differ)}." if differ else ".")


def _number(value: Any) -> str:
    """A recorded value as text; floats in their shortest form (``4.0`` -> ``4``)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _distinguishing_options(done: pd.DataFrame) -> list[str]:
    """``method: option, ...`` for each method with several variants whose recorded options differ."""
    options = [c for c in done if c.startswith("config.options.")]
    out = []
    for method, group in done.groupby("method", sort=False):
        differ = [c.removeprefix("config.options.") for c in options if group[c].astype(str).nunique() > 1]
        if group["label"].nunique() > 1 and differ:
            out.append(f"{method}: {', '.join(differ)}")
    return out
