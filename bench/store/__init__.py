"""The runs folder (:mod:`bench.store.runs`: layout, records, manifests, artefacts) and its claim
files (:mod:`bench.store.locks`). Nothing else builds a path inside a runs folder."""

from .runs import (
    CHECKED_METRICS,
    DIAGNOSTICS,
    OUTPUTS,
    RECORD,
    STATUSES,
    WEIGHTS,
    CorruptRecordError,
    RunStore,
    non_finite_metric,
    read_json,
    stem_part,
)

__all__ = ["CHECKED_METRICS", "DIAGNOSTICS", "OUTPUTS", "RECORD", "STATUSES", "WEIGHTS", "CorruptRecordError",
           "RunStore", "non_finite_metric", "read_json", "stem_part"]
