"""One study's report: records -> statistics -> tables, figures, ``records.csv`` and its page under
``<out>/<study>/``; every file written atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.spec.grid import Grid
from skd_core.atomic import atomic_write_text
from skd_core.errors import SkdError

from . import balance, budget, figures, paper_layout, qualitative, records, tables
from .captions import DEFAULT_CAPTION, check_caption, table_caption
from .colours import label_colours
from .conventions import Conventions, read_conventions
from .html import write_study_html
from .measures import arch_records
from .pages import PAGE, run_info, study_page
from .power import power_caption, study_power, with_power_columns
from .records import GridRun, cell_frame, history_frame, load_cells, load_run, similarity_frame, teacher_frame
from .stats import summarise

TABLE = "summary"
#: stems of figures drawn once per task and test image: ``<prefix>_<task>_<image>``
PER_IMAGE_PREFIXES = ("qualitative", "error")


def build_report(spec: Grid, runs_dir: Path, out: Path, caption: str = DEFAULT_CAPTION) -> Path:
    """Write the report of the run of grid ``spec`` recorded under ``runs_dir`` to ``out/<study>/``;
    returns its page. A pure function of the run store's manifest, records and artefacts: nothing
    is trained, restored or recomputed. ``caption``: the tables' caption length
    (:data:`.captions.CAPTIONS`). Raises :class:`SkdError` when no cell of the grid has finished."""
    check_caption(caption)
    grid = load_run(spec, runs_dir)
    results = load_cells(grid)
    cells = cell_frame(results)
    if not (cells["status"] == "done").any():
        raise SkdError(f"grid {grid.study!r} ({grid.path}) has no finished cell under {runs_dir}; "
                       f"run it first: skd-bench run {grid.path} --profile {grid.profile} --runs-dir {runs_dir}")
    root = out / grid.study
    teachers = teacher_frame(results, grid.store)
    arch = arch_records(grid.store, grid.arch)
    summary = summarise(cells)
    summary["macs_G"] = [_macs_g(arch, m) for m in summary["model"]]
    teachers["macs_G"] = [_macs_g(arch, m) for m in teachers["model"]]
    powers = study_power(summary)
    summary = with_power_columns(summary, powers)
    monitor = balance.monitor_frame(results)
    terms = balance.balance_table(monitor)
    marks = balance.balance_marks(terms)
    summary["balance"] = [marks.get((t, label), "") for t, label in zip(summary["task"], summary["label"], strict=True)]
    conv = read_conventions(grid, cells, arch, power_caption(powers), balance.balance_caption(terms))
    table = tables.table_frame(summary, teachers)
    identity = records.identity_line(records.cell_identities(cells))
    kind, caption = caption, _caption(table_caption(caption, conv, cells), tables.tie_note(tables.tied_mdes(table)),
                                      identity)
    title = f"{grid.study}: {grid.description}".rstrip(": ")
    table_md = tables.markdown_table(table, caption, title)
    table_paths = [atomic_write_text(root / "tables" / f"{TABLE}.md", table_md),
                   atomic_write_text(root / "tables" / f"{TABLE}.tex", tables.latex_table(table, caption, grid.study)),
                   atomic_write_text(root / "tables" / f"{TABLE}.csv", tables.csv_table(table)),
                   *_paper_layout(root / "tables", cells, summary, teachers, conv, title, grid.study, identity, kind)]
    if len(terms):
        table_paths.append(atomic_write_text(root / "tables" / "balance.csv", terms.to_csv(index=False,
                                                                                          float_format="%.6g")))
    budget_plans, budget_tables = _budget(root, cells, teachers, grid)
    table_paths += budget_tables
    atomic_write_text(root / "records.csv", cells.to_csv(index=False))
    colours = label_colours(grid.labels())  # one colour per variant in every figure
    drawn, not_drawn = _figures(root / "figures", cells, summary, table, history_frame(results), _speed(cells, arch),
                                [*_model_plans(grid, results, monitor, colours), *budget_plans], colours)
    info = run_info(grid, [cells, teachers], runs_dir)
    page = study_page(grid, cells, table_md, table_paths, drawn, not_drawn, info, root)
    readme = atomic_write_text(root / PAGE, page)
    write_study_html(grid, cells, table, table_paths, drawn, not_drawn, conv, info, root, kind)
    return readme


def _caption(*parts: str) -> str:
    """A table's caption: its non-empty parts (conventions, the tie note, the machine identity line)."""
    return " ".join(p for p in parts if p)


def _paper_layout(folder: Path, cells: pd.DataFrame, summary: pd.DataFrame, teachers: pd.DataFrame,
                  conv: Conventions, title: str, study: str, identity: str, kind: str) -> list[Path]:
    """The paper-layout table (:mod:`.paper_layout`) when the grid has two tasks or more, else none
    (and any an earlier report left is removed); returns the files written. ``identity``: the
    machine identity line closing its caption; ``kind``: the caption's length."""
    tasks = list(dict.fromkeys(cells["task"]))
    paths = [folder / f"{paper_layout.STEM}.{fmt}" for fmt in ("md", "tex", "csv")]
    if len(tasks) < 2:
        for path in paths:
            path.unlink(missing_ok=True)
        return []
    frame = paper_layout.layout_frame(summary, teachers, tasks)
    tied = {t: mde for t, mde in tables.task_mdes(summary).items()
            if f"tie_{t}.psnr" in frame and frame[f"tie_{t}.psnr"].any()}
    caption = _caption(paper_layout.layout_caption(conv, cells, teachers, frame, kind), tables.tie_note(tied),
                       identity)
    texts = (paper_layout.markdown_layout(frame, tasks, caption, f"{title} (paper layout)"),
             paper_layout.latex_layout(frame, tasks, caption, study), paper_layout.csv_layout(frame))
    return [atomic_write_text(path, text) for path, text in zip(paths, texts, strict=True)]


def _budget(root: Path, cells: pd.DataFrame, teachers: pd.DataFrame,
            grid: GridRun) -> tuple[list[qualitative.Plan], list[Path]]:
    """The training-budget figure's plan and ``tables/budget.csv`` (:mod:`.budget`) when the grid's
    axes vary the students' training steps, else none (and any an earlier report left is removed);
    an unfinished cell is placed at the steps its manifest entry plans."""
    csv = root / "tables" / f"{budget.STEM}.csv"
    if not budget.has_steps_axis(cells):
        for path in (csv, *(root / "figures" / f"{budget.STEM}.{fmt}" for fmt in figures.FORMATS)):
            path.unlink(missing_ok=True)
        return [], []
    planned = {c.id: c.config["train"]["steps"] for c in grid.cells if "steps" in c.config.get("train", {})}
    frame = budget.budget_frame(cells, teachers, planned)
    plan = ("Training budget: PSNR vs training steps per student, teacher on its own schedule", budget.STEM,
            lambda: figures.budget_figure(frame, teachers),
            "" if (frame["seeds"] > 0).any() else "no cell of the steps axis finished")
    return [plan], [atomic_write_text(csv, budget.csv_budget(frame))]


def _macs_g(arch: dict, model: str) -> float:
    """MACs of ``model`` in G (NaN when never measured)."""
    return arch[model]["macs"] / 1e9 if model in arch else float("nan")


def _speed(cells: pd.DataFrame, arch: dict) -> pd.DataFrame:
    """Per (student, teacher) model pair measured on one device: MAC ratio and realised speed-up."""
    rows = []
    for student, teacher in cells[["student", "teacher_model"]].drop_duplicates().itertuples(index=False):
        s, t = arch.get(student), arch.get(teacher)
        if s is None or t is None or s["throughput"]["device_name"] != t["throughput"]["device_name"]:
            continue
        rows.append({"student": student, "teacher": teacher, "mac_ratio": t["macs"] / s["macs"],
                     "speedup": t["throughput"]["ms_per_image"] / s["throughput"]["ms_per_image"],
                     "device": f"{s['throughput']['device']}, {s['throughput']['device_name']}"})
    return pd.DataFrame(rows)


def _figures(folder: Path, cells: pd.DataFrame, summary: pd.DataFrame, table: pd.DataFrame, history: pd.DataFrame,
             speed: pd.DataFrame, extra: list[qualitative.Plan],
             colours: dict[str, str]) -> tuple[dict[str, list[Path]], dict[str, str]]:
    """Draw what the data allows: ``(title -> [png, vector twin], title -> why not drawn)``; a
    figure not drawn now is removed if an earlier report left it (also any per-image figure, stems
    :data:`PER_IMAGE_PREFIXES`, of an image no longer shown), so the pages never link a stale one.
    ``colours``: label -> colour, the same in every figure."""
    plans = [
        ("Ablation: PSNR per variant and paired difference to scratch", "ablation",
         lambda: figures.ablation_figure(cells, summary, colours), ""),
        ("PSNR vs MACs and params per task, Pareto front, teacher marked", "pareto",
         lambda: figures.pareto_figure(table, colours), _pareto_missing(table)),
        ("Training curves", "training", lambda: figures.training_figure(history, colours),
         "" if len(history) else "no training history in the records"),
        ("Realised speed-up vs MAC ratio", "speedup", lambda: figures.speedup_figure(speed),
         "" if len(speed) else "no student and teacher throughput measured on one device"),
        *extra,
    ]
    drawn, not_drawn = {}, {}
    for title, stem, draw, missing in plans:
        if missing:
            not_drawn[title] = missing
            for fmt in figures.FORMATS:
                (folder / f"{stem}.{fmt}").unlink(missing_ok=True)
        else:
            drawn[title] = figures.save_figure(draw(), folder / stem)
    kept = {path.name for paths in drawn.values() for path in paths}
    for prefix in PER_IMAGE_PREFIXES:
        for path in folder.glob(f"{prefix}_*"):
            if path.name not in kept:
                path.unlink()
    return drawn, not_drawn


def _pareto_missing(table: pd.DataFrame) -> str:
    """Why the Pareto figure is not drawn (empty when it is): no MACs measured, or every student of
    each task has the same MACs and params (one x: no trade-off to show)."""
    if not table["macs_G"].notna().any():
        return "no architecture record (MACs) under the runs folder"
    if not figures.pareto_costs(table):
        return ("every student of a task has the same MACs and params, so there is no trade-off to plot; the "
                "ablation figure shows each task's PSNR per variant with its 95% CI")
    return ""


def _model_plans(grid: GridRun, results: list, monitor: pd.DataFrame,
                 colours: dict[str, str]) -> list[qualitative.Plan]:
    """Figures from what the cells kept when they were scored (qualitative, error and attention
    maps) and from what they logged while training: the loss balance, the attention entropy (beside
    the attention maps) and the teacher-student similarity (variants in ``colours``)."""
    similarity = similarity_frame(results)
    entropy = bool(len(monitor)) and bool(monitor["key"].str.startswith("entropy/").any())
    return [("Loss balance: gradient share of each term over training", "balance",
             lambda: balance.balance_figure(monitor), "" if len(monitor) else "no loss balance in the training "
             "histories (cells trained before it was logged)"),
            *qualitative.image_plans(grid, results), qualitative.attention_plan(grid, results),
            ("Cross-net attention entropy per tap over training", "entropy",
             lambda: balance.entropy_figure(monitor, colours), "" if entropy else "no attention entropy logged "
             "(no cell used cross-net attention, or it was trained before entropy was logged)"),
            ("Teacher-student feature similarity per tap over training (linear CKA)", "similarity",
             lambda: figures.similarity_figure(similarity, colours),
             "" if len(similarity) else "no similarity in the training histories (no teacher was available, "
                                        "or the cells were trained before the probe existed)")]
