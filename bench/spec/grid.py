"""Grid specs (``ablations/*.yaml``): a base cell, axes whose product makes the cells, explicit
extra cells, tasks and seeds. Validated in full before anything runs.

Spec keys::

    study: mca_dims                # name; results go to results/<study>/
    description: ...               # one line for the report
    profile: cpu                   # smoke | cpu | paper
    profile_overrides: {}          # e.g. {student_train: {steps: 300}}
    tasks: [denoise25]
    seeds: [0, 1, 2]
    teacher_seed: 0                # one teacher per (profile, task) shared by all student seeds
    train_teacher: false           # true: train each task's teacher even when no cell's method needs
                                   # one (the reference of a scratch-only study's report)
    base: {method: skd, student: null, options: {...}, profile_overrides: {...}}
    axes: {options.mca_dims: [none, channel, spatial, both]}   # dotted keys into a cell, e.g.
                                   # profile_overrides.student_train.steps: [150, 600]
    cells: [{label: ..., method: ..., options: {...}}]          # explicit cells, added to the product
    reference: true                # add the scratch student (the baseline of every difference)
    plugins: [my_methods.py]       # files (relative to this spec) or modules registering models/methods
    report:                        # optional, presentation only (never part of a cell)
      qualitative: {images: [camera], region: [top, left, size], max_images: 2}
      seeds: why this many seeds     # e.g. the measured SD it was chosen from; in every caption

A cell's ``label`` names its variant (a table row); seeds of one label are aggregated. This module
reads and checks specs only: it knows nothing of jobs, profiles' contents or methods (a cell's
method, options and profile overrides are checked when :mod:`bench.execute.cells` resolves it).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from skd_core.errors import ConfigError, SkdError, check_keys, closest_first

SPEC_KEYS = ("study", "description", "profile", "profile_overrides", "tasks", "seeds", "teacher_seed",
             "train_teacher", "base", "axes", "cells", "reference", "plugins", "report")
CELL_KEYS = ("label", "method", "student", "options", "profile_overrides", "task")
DEFAULT_METHOD = "skd"
#: spec keys that only change how a run is presented, not which cells it has
PRESENTATION_KEYS = ("description", "report")
REFERENCE_LABEL = "scratch"
REPORT_KEYS = ("qualitative", "seeds")
QUALITATIVE_KEYS = ("images", "region", "max_images")


@dataclass(frozen=True)
class QualitativeOptions:
    """``report.qualitative`` of a spec: the test images to show (names; ``None``: the task's first
    ``max_images``) and the zoomed region ``(top, left, size)`` in pixels of the image as the cells
    were scored (after any centre crop; ``None``: where the restored outputs differ most)."""

    images: tuple[str, ...] | None = None
    region: tuple[int, int, int] | None = None
    max_images: int = 2


@dataclass(frozen=True)
class CellSpec:
    """One grid cell as the spec gives it: a variant (``label``) at one task and seed; ``student``
    None means the profile's; ``profile_overrides`` are the grid's merged with the cell's."""

    label: str
    task: str
    seed: int
    method: str
    student: str | None
    options: dict[str, Any]
    profile_overrides: dict[str, Any]
    axes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Grid:
    study: str
    description: str
    path: Path
    profile: str
    tasks: list[str]
    seeds: list[int]
    teacher_seed: int
    cells: list[CellSpec]
    spec: dict[str, Any]
    overrides: dict[str, Any]
    plugins: tuple[str, ...] = ()
    qualitative: QualitativeOptions = field(default_factory=QualitativeOptions)
    train_teacher: bool = False  # train each task's teacher even when no cell's method needs one
    seeds_why: str = ""  # report.seeds: why this many seeds (the captions say it)

    def labels(self) -> list[str]:
        return list(dict.fromkeys(c.label for c in self.cells))

    def run_key(self) -> str:
        """12 hex digits naming one run of this grid in a run store (its manifest): the hash of the
        spec (less :data:`PRESENTATION_KEYS`, which change no cell), the profile and the command-line
        overrides; ids of cells are not involved."""
        spec = {k: v for k, v in self.spec.items() if k not in PRESENTATION_KEYS}
        blob = json.dumps({"spec": spec, "profile": self.profile, "overrides": self.overrides}, sort_keys=True,
                          default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def load_grid(path: str | Path, profile: str | None = None, overrides: Mapping[str, Any] | None = None) -> Grid:
    """Read, validate and expand ``path``; ``profile`` replaces the spec's profile, ``overrides`` are
    merged into its ``profile_overrides``. Every error is a :class:`ConfigError` naming the file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a grid file")
    if not path.is_file():
        raise ConfigError(f"grid file not found: {path}")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {exc.start}); a grid spec is YAML text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read grid file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: a grid spec must be a mapping of keys, got {type(spec).__name__}")
    try:
        return _expand(spec, path, profile, overrides or {})
    except ConfigError as exc:
        if str(path) in str(exc):
            raise
        raise ConfigError(f"{path}: {exc}") from exc
    except SkdError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _expand(spec: dict[str, Any], path: Path, profile: str | None, overrides: Mapping[str, Any]) -> Grid:
    check_keys(spec, SPEC_KEYS, "grid key")
    study = _typed(spec, "study", str, path.stem)
    profile_name = profile or _typed(spec, "profile", str, "cpu")
    tasks = _typed(spec, "tasks", list, ["denoise25"])
    seeds = _typed(spec, "seeds", list, [0, 1, 2])
    if not seeds or not all(type(s) is int and s >= 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"key 'seeds' must be a non-empty list of distinct integers >= 0, got {seeds!r}")
    if not tasks or not all(isinstance(t, str) for t in tasks):
        raise ConfigError(f"key 'tasks' must be a non-empty list of task names, got {tasks!r}")
    teacher_seed = _typed(spec, "teacher_seed", int, 0)
    if teacher_seed < 0:
        raise ConfigError(f"key 'teacher_seed' must be an integer >= 0, got {teacher_seed!r}")
    plugins = _typed(spec, "plugins", list, [])
    if not all(isinstance(p, str) and p for p in plugins):
        raise ConfigError(f"key 'plugins' must be a list of .py files or module names, got {plugins!r}")
    prof_over = _merge(_typed(spec, "profile_overrides", dict, {}), overrides)
    base = _typed(spec, "base", dict, {})
    check_keys(base, CELL_KEYS, "cell key", "base")
    axes = _typed(spec, "axes", dict, {})
    for key, values in axes.items():
        _check_cell_path(key, "axes")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"axis {key!r} must be a non-empty list of values, got {values!r}")
    extra_cells = _typed(spec, "cells", list, [])
    variants: list[tuple[dict[str, Any], dict[str, Any]]] = []
    # without axes, the base alone is a cell only when no explicit cells are given
    for combo in itertools.product(*axes.values()) if axes or not extra_cells else []:
        chosen = dict(zip(axes, combo, strict=True))
        cell = copy.deepcopy(base)
        for key, value in chosen.items():
            _set_path(cell, key, value)
        cell.setdefault("label", ", ".join(f"{k.split('.')[-1]}={short_value(v)}" for k, v in chosen.items())
                        or cell.get("method", DEFAULT_METHOD))
        variants.append((cell, chosen))
    for i, extra in enumerate(extra_cells):
        if not isinstance(extra, dict):
            raise ConfigError(f"cells[{i}] must be a mapping, got {extra!r}")
        check_keys(extra, CELL_KEYS, "cell key", f"cells[{i}]")
        cell = _merge(copy.deepcopy(base), extra)
        cell.setdefault("label", cell.get("method", DEFAULT_METHOD))
        variants.append((cell, {}))
    if _typed(spec, "reference", bool, True) and not any(c.get("method") == "scratch" and "student" not in c
                                                         for c, _ in variants):
        variants.append(({"label": REFERENCE_LABEL, "method": "scratch"}, {}))
    labels = [c["label"] for c, _ in variants]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ConfigError(f"two cells share the label(s) {dupes}; give explicit 'label's")
    cells = []
    for cell, chosen in variants:
        where = f"cell {cell['label']!r}"
        options = cell.get("options") or {}
        cell_over = cell.get("profile_overrides") or {}
        for key, value in (("options", options), ("profile_overrides", cell_over)):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key} must be a mapping, got {value!r}")
        for key in ("method", "student", "task"):
            if cell.get(key) is not None and not isinstance(cell[key], str):
                raise ConfigError(f"{where}: {key} must be a name, got {cell[key]!r}")
        for task in [cell["task"]] if "task" in cell else tasks:
            for seed in seeds:
                cells.append(CellSpec(cell["label"], task, seed, cell.get("method", DEFAULT_METHOD),
                                      cell.get("student"), dict(options), _merge(prof_over, cell_over), chosen))
    return Grid(study, _typed(spec, "description", str, ""), path, profile_name, tasks, seeds, teacher_seed, cells,
                spec, dict(overrides), tuple(plugins), _qualitative(_typed(spec, "report", dict, {})),
                _typed(spec, "train_teacher", bool, False), _typed(_typed(spec, "report", dict, {}), "seeds", str, ""))


def _qualitative(report: dict[str, Any]) -> QualitativeOptions:
    check_keys(report, REPORT_KEYS, "report key", "report")
    block = _typed(report, "qualitative", dict, {})
    check_keys(block, QUALITATIVE_KEYS, "qualitative figure key", "report.qualitative")
    images, region = block.get("images"), block.get("region")
    max_images = _typed(block, "max_images", int, 2)
    if max_images < 1:
        raise ConfigError(f"report.qualitative.max_images must be >= 1, got {max_images!r}")
    if images is not None and (not isinstance(images, list) or not images
                               or not all(isinstance(n, str) and n for n in images)):
        raise ConfigError(f"report.qualitative.images must be a non-empty list of test image names, got {images!r}")
    if region is not None and (not isinstance(region, list) or len(region) != 3
                               or not all(isinstance(v, int) and not isinstance(v, bool) for v in region)
                               or min(region[:2]) < 0 or region[2] < 1):
        raise ConfigError(f"report.qualitative.region must be [top, left, size] in pixels (top, left >= 0, "
                          f"size >= 1), got {region!r}")
    return QualitativeOptions(tuple(images) if images else None, tuple(region) if region else None, max_images)


def _typed(spec: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    value = spec.get(key, default)
    if value is None:
        return default
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"key {key!r} must be a {kind.__name__}, got {value!r}")
    return value


def _check_cell_path(key: str, where: str) -> None:
    head, _, rest = key.partition(".")
    if head not in CELL_KEYS:
        raise ConfigError(f"{where}: {key!r} does not start with a cell key; did you mean "
                          f"{closest_first(head, CELL_KEYS)[0]!r}? Valid: {', '.join(CELL_KEYS)}")
    if head == "options" and not rest:
        raise ConfigError(f"{where}: use 'options.NAME' to vary one distillation option")


def _set_path(node: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def short_value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value))
    return str(value)
