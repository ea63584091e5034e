"""Shipped teachers: trained teachers committed with the repository, used only when they are the
teacher a run would train.

A teacher the ``cpu`` profile would train costs most of a 2-core machine's time budget, so the
repository ships them under :data:`SHIPPED` (``results/teachers/<profile>-<task>/``): the weights
(``model.safetensors``), the teacher's record exactly as the run store wrote it, its kept
restorations (``outputs/``) and ``shipped.json`` (teacher id, SHA-256 of the weights, the command
that made it). :func:`import_shipped` copies one into a runs folder when its id equals the id the
run would train under -- the id hashes the teacher's resolved config (model, schedule, data specs),
its code identity and the data fingerprints, so any change to the training code, the model, the
schedule or the data makes the shipped teacher unused and the teacher is retrained. Made by
``skd-bench ship-teachers`` (:func:`ship`).
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.spec.codeid import REPO
from bench.store import OUTPUTS, RECORD, WEIGHTS, RunStore, read_json
from skd_core.atomic import atomic_write_json
from skd_core.data import load_pairs
from skd_core.errors import ConfigError
from skd_core.metrics import quantize
from skd_core.models import CheckpointError
from skd_core.train.evaluate import centre_crop

#: where shipped teachers live in the repository
SHIPPED = REPO / "results" / "teachers"
MANIFEST = "shipped.json"


def shipped_dir(profile: str, task: str, root: Path | None = None) -> Path:
    """``root`` (default :data:`SHIPPED`) ``/ <profile>-<task>``."""
    return Path(root if root is not None else SHIPPED) / f"{profile}-{task}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ship(store: RunStore, teacher_id: str, profile: str, task: str, command: str, root: Path | None = None,
         force: bool = False) -> Path:
    """Copy the finished teacher ``teacher_id`` of ``store`` to :func:`shipped_dir`; returns that folder.
    Replacing a shipped teacher with another id needs ``force``."""
    source = store.teacher_dir(teacher_id)
    record = store.read_record(source)
    if record is None or record.get("status") != "done" or not store.weights(source).is_file():
        raise ConfigError(f"no finished teacher {teacher_id} in {store.root} to ship (train it first)")
    dest = shipped_dir(profile, task, root)
    shipped = read_json(dest / MANIFEST) if (dest / MANIFEST).is_file() else None
    if shipped is not None and shipped.get("id") != teacher_id and not force:
        raise ConfigError(f"{dest} holds shipped teacher {shipped.get('id')}, not {teacher_id}; pass --force to "
                          "replace it")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copy2(store.weights(source), dest / WEIGHTS)
    shutil.copy2(source / RECORD, dest / RECORD)
    if (source / OUTPUTS).is_dir():
        shutil.copytree(source / OUTPUTS, dest / OUTPUTS)
    atomic_write_json(dest / MANIFEST, {"id": teacher_id, "weights_sha256": sha256(dest / WEIGHTS),
                                        "profile": profile, "task": task, "command": command,
                                        "shipped": time.strftime("%Y-%m-%d")})
    return dest


def import_shipped(store: RunStore, teacher_id: str, profile: str, task: str, test_data: str,
                   layout: str | None, eval_max_side: int, root: Path | None = None) -> dict[str, Any] | None:
    """The shipped teacher for (``profile``, ``task``) copied into ``store`` as teacher
    ``teacher_id``, and its record (``shipped`` added); None when none is shipped or it is another
    teacher (other config, code or data). Weights whose SHA-256 differs from ``shipped.json`` are a
    :class:`CheckpointError` naming the file."""
    folder = shipped_dir(profile, task, root)
    manifest = read_json(folder / MANIFEST) if (folder / MANIFEST).is_file() else None
    if manifest is None or manifest.get("id") != teacher_id:
        return None
    if sha256(folder / WEIGHTS) != manifest.get("weights_sha256"):
        raise CheckpointError(f"shipped teacher {folder / WEIGHTS} does not match its SHA-256 in "
                              f"{folder / MANIFEST} (a corrupt or partial copy; restore it from git)")
    record = read_json(folder / RECORD)
    if record is None or record.get("id") != teacher_id or record.get("status") != "done":
        raise CheckpointError(f"shipped teacher record {folder / RECORD} is not the finished teacher {teacher_id} "
                              f"that {folder / MANIFEST} names (restore the folder from git)")
    dest = store.writable().teacher_dir(teacher_id)
    dest.mkdir(parents=True, exist_ok=True)
    if (folder / OUTPUTS).is_dir():
        shutil.copytree(folder / OUTPUTS, dest / OUTPUTS, dirs_exist_ok=True)
    shutil.copy2(folder / WEIGHTS, dest / WEIGHTS)
    if record.get("testset") and record.get("outputs"):  # the evaluated pairs its kept outputs belong to
        names = set(record["outputs"])
        pairs = {p.name: _kept(p.lq, p.gt, eval_max_side) for p in load_pairs(test_data, task, layout, "test")
                 if p.name in names}
        store.save_testset(Path(record["testset"]).name, pairs)
    record["shipped"] = {"from": str(folder.relative_to(REPO)) if folder.is_relative_to(REPO) else str(folder),
                         **manifest}
    store.write_record(dest, record)
    return record


def _kept(lq: np.ndarray, gt: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 ``(lq, gt)`` a scoring keeps (after its centre crop), as :func:`evaluate` keeps them."""
    if max_side:
        lq, gt = centre_crop(lq, max_side), centre_crop(gt, max_side)
    return quantize(lq).astype(np.uint8), quantize(gt).astype(np.uint8)
