"""What a finished run keeps beside its record: restored test images, the evaluated test pairs, diagnostics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.spec.profiles import Profile
from bench.store import RunStore
from skd_core.train.runs import RunResult

from .cells import fingerprints


def save_artefacts(store: RunStore, folder: Path, result: RunResult, profile: Profile, task: str,
               split: str = "test") -> dict[str, Any]:
    """Keep the run's restored images of the scored split, the evaluated pairs (under that split's
    fingerprint) and its diagnostics in the store; the record fields that point to them."""
    fields: dict[str, Any] = {"outputs": store.save_images(folder, {n: out for n, (_, _, out) in result.kept.items()})}
    pairs = {n: (lq, gt) for n, (lq, gt, _) in result.kept.items()}
    fields["testset"] = store.save_testset(fingerprints(profile, task, split)[split] + f"-{profile.eval_max_side}",
                                           pairs)
    diagnostics = store.save_diagnostics(folder, result.diagnostics)
    if diagnostics:
        fields["diagnostics"], fields["diagnostics_keys"] = diagnostics, list(result.diagnostics)  # method's order
    return fields
