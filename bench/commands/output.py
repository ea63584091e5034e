"""Printing command results: a readable table by default, JSON with ``--json``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tabulate import tabulate


def emit(records: Sequence[Mapping[str, Any]] | Mapping[str, Any], as_json: bool, floatfmt: str = ".4g") -> None:
    """Print ``records`` (one mapping or a list of them) as JSON or as a table."""
    if as_json:
        print(json.dumps(records, indent=2, default=str))
        return
    rows = [records] if isinstance(records, Mapping) else list(records)
    if not rows:
        print("(nothing)")
        return
    print(tabulate([{k: _cell(v) for k, v in r.items()} for r in rows], headers="keys", floatfmt=floatfmt))


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return "x".join(map(str, value)) if all(isinstance(v, int) for v in value) else ", ".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return value
