"""A short hash that identifies the data a result was computed on.

Embedded: scikit-image version, split, image names and crop boxes, task and its degradation
parameters, and :data:`.degrade.RECIPE_VERSION`. Folders: layout, and per pair the name, the paths
relative to the folder and a SHA-256 of each file's bytes (content, not modification times, so a
copied folder keeps its fingerprint and an edited file changes it; reading costs about a second
per GB); the task only where it makes the inputs (clean-only layout).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import skimage

from .datasets import parse_spec
from .degrade import RECIPE_VERSION
from .embedded import embedded_images
from .folders import find_pairs
from .tasks import TaskInfo


def data_fingerprint(spec: str, task: str | TaskInfo | None = None, layout: str | None = None,
                     split: str = "test") -> str:
    """16 hex digits identifying the data of ``spec`` (see the module docstring for what counts)."""
    parsed = parse_spec(spec, task)
    record: dict[str, object] = {"recipe": RECIPE_VERSION}
    if parsed.source == "embedded":
        record |= {"source": "embedded", "skimage": skimage.__version__, "split": split,
                   "images": [[e.name, e.box] for e in embedded_images(split)]}
        makes_inputs = True
    else:
        chosen, files = find_pairs(parsed.path, layout)
        root = parsed.path

        def file(path: Path | None) -> list[str] | None:
            return None if path is None else [path.relative_to(root).as_posix(), _sha256(path)]

        record |= {"source": "folder", "layout": chosen.name,
                   "pairs": [[f.name, file(f.lq), file(f.gt)] for f in files]}
        makes_inputs = not chosen.paired
    if makes_inputs and parsed.task is not None:
        record["task"] = [parsed.task.name, parsed.task.kind, parsed.task.params]
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
