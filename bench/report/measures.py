"""The per-architecture measurements a report uses (params, MACs and throughput of each model at the
profile's input size; see :mod:`bench.execute.arch`), found through the keys the runner wrote into the
grid's manifest, so student and teacher throughput come from the machine that ran the grid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.store import RunStore
from skd_core.errors import SkdError


def arch_records(store: RunStore, keys: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``model -> record`` for each ``model -> key``; models whose record is missing or unreadable
    are left out."""
    out = {}
    for model, key in keys.items():
        try:
            record = store.read_record(store.arch_dir(key))
        except SkdError:
            record = None
        if record is not None:
            out[model] = record
    return out
