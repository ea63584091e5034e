"""``KEY=VALUE`` command-line overrides with dotted keys and YAML-typed values (safe loader)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from skd_core.errors import ConfigError


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["student_train.steps=100", "eval_max_side=0"]`` -> nested dict; values parsed as YAML."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like KEY=VALUE")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from exc
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier override of {part!r}")
        node[leaf] = value
    return out
