"""The per-architecture measurements (``runs/arch/<key>/record.json``, see :mod:`bench.arch`) a
report uses: params, MACs and throughput of each model at the profile's input size."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..arch import arch_key
from ..jobs import RECORD, read_record

#: devices tried, in order, for the record this machine and code version would write
DEVICES = ("cuda", "cpu")


def arch_records(runs_dir: Path, models: Iterable[tuple[str, tuple[int, int]]]) -> dict[str, dict[str, Any]]:
    """``model -> record`` for each ``(model, (H, W))`` measured under ``runs_dir``.

    Prefers the record this machine, torch and code version would write (:func:`bench.arch.arch_key`,
    CUDA before CPU), so that student and teacher throughput come from one machine; otherwise the
    newest stored record of that model at that size. Models never measured are left out.
    """
    stored: dict[tuple[str, tuple[int, ...]], list[tuple[str, float, dict[str, Any]]]] = {}
    for path in (runs_dir / "arch").glob(f"*/{RECORD}"):
        record = read_record(path.parent)
        size = tuple(record.get("input_shape", ())[2:])
        stored.setdefault((record["model"], size), []).append((path.parent.name, path.stat().st_mtime, record))
    out = {}
    for model, size in dict.fromkeys((m, tuple(s)) for m, s in models):
        found = stored.get((model, size), [])
        if not found:
            continue
        by_key = {key: record for key, _, record in found}
        preferred = [by_key[k] for k in (arch_key(model, size, d) for d in DEVICES) if k in by_key]
        out[model] = preferred[0] if preferred else max(found, key=lambda f: f[1])[2]
    return out
