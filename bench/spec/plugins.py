"""Declared plugins: Python files or modules that register models and methods.

A grid spec names them (``plugins: [my_methods.py, mylab.students]``; files relative to the spec's
folder), and so does ``skd-bench train --plugin``. Every process that expands or runs a cell --
the main one, each local worker, each Ray worker -- imports them through :func:`load_plugins`
before it looks a name up, and their source becomes part of the code identity of the cells whose
model or method they define (:mod:`bench.spec.codeid`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

from skd_core.errors import ConfigError

from . import codeid

_LOADED: set[str] = set()


def resolve(spec: str, base: Path | None = None) -> str:
    """A plugin as it travels to workers: an absolute ``.py`` path (relative ones resolved against
    ``base``, default the working directory) or a dotted module name."""
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"a plugin must be a .py file or a dotted module name, got {spec!r}")
    if spec.endswith(".py"):
        path = Path(spec)
        path = path if path.is_absolute() else (base or Path.cwd()) / path
        if not path.is_file():
            raise ConfigError(f"plugin file not found: {path}")
        return str(path.resolve())
    return spec


def module_name(path: Path) -> str:
    """The module name a plugin file is imported under: its stem and a hash of its path."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    return f"skd_plugin_{path.stem}_{digest}"


def portable_name(module: str) -> str:
    """``module``, with a plugin file's location hash dropped (``skd_plugin_mine_1a2b3c4d`` ->
    ``plugin:mine``), for what ids hash: moving a project folder changes no id."""
    if module.startswith("skd_plugin_"):
        return "plugin:" + module[len("skd_plugin_"):].rpartition("_")[0]
    return module


def load_plugins(specs: Iterable[str]) -> None:
    """Import each resolved plugin once per process and count its source in cell ids."""
    for spec in specs:
        if spec in _LOADED:
            continue
        name = module_name(Path(spec)) if spec.endswith(".py") else spec
        folder = str(Path(spec).parent)
        try:
            if spec.endswith(".py"):
                codeid.INDEX.add_plugin(name, Path(spec))
                loader = importlib.util.spec_from_file_location(name, spec)
                module = importlib.util.module_from_spec(loader)
                sys.modules[name] = module
                sys.path.insert(0, folder)  # its sibling modules import by bare name
                loader.loader.exec_module(module)
            else:
                codeid.INDEX.add_plugin(spec)
                importlib.import_module(spec)
        except Exception as exc:  # the plugin's own error: name the plugin, leave no half-imported module
            sys.modules.pop(name, None)
            if spec.endswith(".py") and folder in sys.path:
                sys.path.remove(folder)
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"plugin {spec} failed to import: {type(exc).__name__}: {exc}") from exc
        _LOADED.add(spec)
