"""``bench`` imports one way: spec and store at the bottom, execute and report on them, tune and
perf on execute, commands on everything, the CLI on top. The light layers (spec, store, report)
import neither torch nor the training stack, and every committed cell id is what the code gives."""

from __future__ import annotations

import ast
import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
#: package of bench -> layer; a module may import its own package and lower layers only
LAYERS = {"spec": 0, "store": 0, "execute": 1, "report": 1, "tune": 2, "perf": 2, "commands": 3, "cli": 4,
          "__main__": 5}
#: the layers that must load without torch or any method (parsing a grid, reading a runs folder, reports)
LIGHT = ("spec", "store", "report")
HEAVY = ("torch", "skd_core.methods", "skd_core.models", "skd_core.losses", "skd_core.train.runs",
         "skd_core.train.loop", "bench.execute")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def bench_imports(path: Path, root: Path = ROOT) -> set[str]:
    """The ``bench.*`` modules and packages that ``path`` imports (relative imports resolved)."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # may be a module
    return {m for m in found if m == "bench" or m.startswith("bench.")}


def layer(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def wrong_imports(root: Path = ROOT) -> list[str]:
    """Every import in ``root/bench`` from a layer to a higher one or to a peer."""
    wrong = []
    for path in sorted((root / "bench").rglob("*.py")):
        here = layer(module_name(path, root))
        for target in sorted(bench_imports(path, root)):
            there = layer(target)
            if here in ("", there) or there not in LAYERS:
                continue
            if LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{module_name(path, root)} imports {target} ({here} is layer {LAYERS[here]}, "
                             f"{there} is layer {LAYERS[there]})")
    return wrong


def test_every_bench_package_has_a_layer() -> None:
    tops = {p.stem if p.is_file() else p.name for p in BENCH.iterdir()
            if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert tops == set(LAYERS), f"packages without a layer, or layers without a package: {tops ^ set(LAYERS)}"


def test_imports_run_one_way() -> None:
    wrong = wrong_imports()
    assert not wrong, "imports from a lower layer to a higher one (or between peers):\n" + "\n".join(wrong)


@pytest.mark.parametrize("line", ["from ..execute.cells import Cell", "from bench.report import build_report",
                                  "import bench.commands.run"])
def test_the_walk_reports_an_upward_or_peer_import(tmp_path: Path, line: str) -> None:
    shutil.copytree(BENCH, tmp_path / "bench", ignore=shutil.ignore_patterns("__pycache__"))
    store = tmp_path / "bench" / "store" / "runs.py"
    store.write_text(store.read_text() + f"\n{line}\n")
    assert [w for w in wrong_imports(tmp_path) if w.startswith("bench.store.runs imports")]


@pytest.mark.parametrize("package", LIGHT)
def test_light_layers_load_no_training_stack(package: str) -> None:
    modules = sorted(module_name(p) for p in (BENCH / package).rglob("*.py"))
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "import bench.spec.profiles as p\nfor name in p.profile_names(): p.untuned_profile(name)\n"
            f"bad = sorted(m for m in sys.modules if m.startswith({HEAVY!r}))\nassert not bad, bad\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]


def test_help_and_the_report_command_load_no_training_stack() -> None:
    code = ("import sys\nfrom bench.cli import build_parser\nbuild_parser(['report'])\n"
            f"bad = sorted(m for m in sys.modules if m.startswith({HEAVY!r}))\nassert not bad, bad\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]


#: committed studies whose records the current code reproduces the ids of (``contrastive``'s report
#: predates the current SKD code: results/REFERENCE_RUN.md lists it)
COMMITTED = ("kd_methods", "student_sizes", "mca_dims", "distance", "budget")


@pytest.mark.parametrize("study", COMMITTED)
def test_committed_cell_ids_are_what_the_code_gives(study: str) -> None:
    from bench.execute.cells import cells_of
    from bench.spec.grid import load_grid

    with open(ROOT / "results" / study / "records.csv", newline="", encoding="utf-8") as f:
        committed = {(r["label"], r["task"], int(r["seed"])): r["id"] for r in csv.DictReader(f)}
    now = {(c.label, c.task, c.seed): c.id for c in cells_of(load_grid(ROOT / "ablations" / f"{study}.yaml"))}
    assert committed and now == committed
