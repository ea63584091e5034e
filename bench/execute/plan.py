"""Which cells a run runs and in what order: ``--only`` filters, cells shared by several grids run
once, and the teacher replay's groups (:mod:`bench.execute.replay`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from bench.spec.grid import Grid, short_value
from skd_core.errors import ConfigError, closest_first

from .cells import Cell, cell_teacher, cells_of, needs_teacher
from .provenance import config_hash
from .replay import PLAYER, RECORDER, ReplaySpec


def match_only(cell: Cell, only: Iterable[str]) -> bool:
    """``--only key=value`` filters: keys ``label``, ``task``, ``seed``, ``method``, ``student``, ``id``
    or an option name; all filters must match."""
    for item in only:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--only {item!r} must look like KEY=VALUE")
        fields = {"label": cell.label, "task": cell.task, "seed": str(cell.seed), "method": cell.job.method,
                  "student": cell.job.student, "id": cell.id,
                  **{k: short_value(v) for k, v in cell.job.options.items()}}
        if key not in fields:
            raise ConfigError(f"--only key {key!r} unknown; did you mean {closest_first(key, fields)[0]!r}?")
        if fields[key] != value:
            return False
    return True


def select(grids: Sequence[Grid], only: Sequence[str]) -> tuple[dict[str, Cell], list[tuple[Grid, list[Cell]]]]:
    """The cells of ``grids`` matching ``only`` (deduplicated by id: a cell shared by two studies
    runs once), and each grid with all its cells; ``--only`` matching no cell is an error."""
    resolved = [(grid, cells_of(grid)) for grid in grids]
    cells: dict[str, Cell] = {}
    for _, grid_cells in resolved:
        for cell in grid_cells:
            if match_only(cell, only):
                cells.setdefault(cell.id, cell)
    if only and not cells:
        raise ConfigError(f"--only {' '.join(only)} matches no cell of {', '.join(str(g.path) for g in grids)}")
    return cells, resolved


def replay_plan(cells: Sequence[Cell], folder: Path) -> tuple[list[Cell], dict[str, ReplaySpec]]:
    """The teacher replay of ``cells`` (:mod:`bench.execute.replay`) and their run order.

    Cells with the same teacher, task, seed, split and student schedule draw the same batches: a
    *group*. In each group of two or more, the first cell in grid order records and the others
    play. Order: the first group's recorder; then, group by group, the next group's recorder and
    this group's players; then every other cell -- so a player starts when its recorder is done
    (or far ahead), only about two groups' entries are on disk at a time, and the short
    teacher-free cells fill the end of the run. Returns the ordered cells and
    ``{cell id: spec}``."""
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        if needs_teacher(cell):
            job = cell.job
            key = config_hash({"teacher": cell_teacher(cell), "task": cell.task, "seed": cell.seed,
                               "split": job.split, "train": job.profile.student_train.to_dict()})
            groups.setdefault(key, []).append(cell)
    specs: dict[str, ReplaySpec] = {}
    shared = [members for members in groups.values() if len(members) > 1]
    for key, members in groups.items():
        for i, cell in enumerate(members if len(members) > 1 else ()):
            specs[cell.id] = ReplaySpec(folder / key, RECORDER if i == 0 else PLAYER, cell_teacher(cell))
    order = [m[0] for m in shared[:1]]
    for i, members in enumerate(shared):
        order += [m[0] for m in shared[i + 1:i + 2]] + members[1:]
    ordered = {c.id: c for c in [*order, *cells]}  # dict: first position wins
    return list(ordered.values()), specs
