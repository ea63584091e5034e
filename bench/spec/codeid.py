"""Code identity: the hash of the source a result's computation imports, comments and docstrings aside.

A result depends on the modules its computation starts from (its *roots*: the training and scoring
module, the model's module, the method's module) and, transitively, on every module they import.
The rule, applied statically (the source is parsed, never run):

- followed: ``import a.b`` and ``from a.b import c`` (also relative ones) name ``a.b``, and ``a.b.c``
  too when that is a module; the ``__init__`` of a parent package is *not* followed unless it is
  imported itself, so ``skd_core/methods/skd.py`` depends on ``skd_core.methods.base`` but not on
  the package ``__init__`` that imports every method;
- hashed: modules of this repository's packages (:data:`PROJECT_PACKAGES`) and of declared plugins
  (a plugin file, and ``.py`` files beside it that it imports; a plugin package's own modules);
  everything else (torch, numpy, ...) is a library whose version the provenance records;
- normalised: each module is hashed as its abstract syntax tree with docstrings removed, so
  comments, docstrings and formatting never change an id while any change to code does.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: top-level packages whose modules are part of a result's code identity
PROJECT_PACKAGES = ("skd_core", "bench")


class CodeIndex:
    """Finds and hashes the source of modules under ``roots`` (folders holding the project packages)
    plus registered plugin modules; results are cached per process (sources do not change under a
    running process)."""

    def __init__(self, roots: Iterable[Path] = (REPO,)) -> None:
        self.roots = [Path(r) for r in roots]
        self.plugin_files: dict[str, Path] = {}  # module name -> file, for plugins loaded from a path
        self.plugin_packages: set[str] = set()  # top-level packages of plugins named by module

    def add_plugin(self, module: str, path: Path | None = None) -> None:
        """Count ``module`` (loaded from ``path``, or importable by name) and its siblings as project code."""
        if path is not None:
            self.plugin_files[module] = Path(path).resolve()
        else:
            self.plugin_packages.add(module.split(".")[0])
        self.source_of.cache_clear()
        self.identity.cache_clear()

    @functools.cache  # noqa: B019 -- one index per process, lives as long
    def source_of(self, module: str) -> Path | None:
        """The file of ``module`` if it is project or plugin code, else None."""
        if module in self.plugin_files:
            return self.plugin_files[module]
        top = module.split(".")[0]
        if top in PROJECT_PACKAGES:
            parts = module.split(".")
            for root in self.roots:
                for candidate in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
                    if candidate.is_file():
                        return candidate
            return None
        if top in self.plugin_packages:
            try:
                spec = importlib.util.find_spec(module)
            except (ImportError, ValueError):  # e.g. a name imported from a module, not a module
                return None
            return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None
        return None

    def _imports(self, module: str, path: Path) -> set[str]:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".") if package else []
                    anchor = anchor[:len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                    base = ".".join([*anchor, *([base] if base else [])])
                if node.module:
                    found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        if path in self.plugin_files.values():  # a plugin file's bare imports of files beside it
            for name in found:
                sibling = path.parent / f"{name}.py"
                if "." not in name and sibling.is_file() and self.source_of(name) is None:
                    self.plugin_files[name] = sibling.resolve()
                    self.source_of.cache_clear()
        return {m for m in found if self.source_of(m) is not None}

    def closure(self, roots: Iterable[str]) -> dict[str, Path]:
        """Every project or plugin module reachable from ``roots`` by imports, with its file."""
        todo, seen = list(roots), {}
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            path = self.source_of(module)
            if path is None:
                continue
            seen[module] = path
            todo.extend(self._imports(module, path) - seen.keys())
        return dict(sorted(seen.items()))

    @functools.cache  # noqa: B019
    def identity(self, roots: tuple[str, ...]) -> str:
        """12 hex digits: the hash of every module in :meth:`closure` (name and normalised source)."""
        h = hashlib.sha256()
        for module, path in self.closure(roots).items():
            # a plugin file counts by its file name, not the module name it got (which encodes where it is)
            h.update((f"plugin:{path.name}" if module in self.plugin_files else module).encode())
            h.update(normalised_source(path.read_text(encoding="utf-8")).encode())
        return h.hexdigest()[:12]


def normalised_source(text: str) -> str:
    """``text``'s syntax tree with module, class and function docstrings removed, as a string:
    equal for two sources that differ only in comments, docstrings or layout."""
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


#: the index every id of this process uses (tests may swap it for one over an edited copy)
INDEX = CodeIndex()


def code_identity(roots: Iterable[str]) -> str:
    """:meth:`CodeIndex.identity` of ``roots`` in :data:`INDEX`."""
    return INDEX.identity(tuple(sorted(set(roots))))
