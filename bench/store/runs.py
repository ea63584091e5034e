"""The run store: the one owner of a runs folder's layout, records, locks, manifests and artefacts.

Layout under the root (``--runs-dir``, default ``runs/``)::

    teachers/<teacher id>/  record.json  model.safetensors  checkpoint/  outputs/  train.lock
    cells/<cell id>/        record.json  model.safetensors  checkpoint/  outputs/  diagnostics.safetensors
                            run.lock
    arch/<key>/record.json  params, MACs and throughput of one architecture (bench.execute.arch)
    grids/<study>/<key>.json  a grid run's manifest: its spec, cells (ids, labels, configs) and arch keys
    testsets/<fingerprint>/   the evaluated test pairs (uint8 PNG) that outputs are compared with
    replay/<host>-<pid>-<tag>/  a running grid's teacher-replay entries (deleted when it ends)

A record is written atomically and last; its presence means the job ended (``status`` ``done`` or
``failed``). A record that cannot be read (truncated, empty, not a JSON object) is *corrupt*: it
counts as not finished, ``run`` sets it aside as ``record.json.corrupt-<time>`` and redoes the
job. A ``done`` record with a non-finite metric counts as failed. Restored images are kept as
8-bit PNG, the exact values the scores were computed from (uint8 quantisation).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from skd_core.atomic import atomic_write, atomic_write_json
from skd_core.errors import ConfigError, SkdError

from .locks import FileLock

RECORD = "record.json"
WEIGHTS = "model.safetensors"
DIAGNOSTICS = "diagnostics.safetensors"
OUTPUTS = "outputs"
#: the training loop's checkpoint folder inside a job's folder (``skd_core.train.loop.fit``)
CHECKPOINT = "checkpoint"
#: the teacher replay's entries, per run: ``replay/<host>-<pid>-<tag>/<group>/``
REPLAY = "replay"
#: statuses of a job as the store sees it
STATUSES = ("done", "failed", "running", "corrupt", "pending")
#: metric fields that must be finite in a ``done`` record
CHECKED_METRICS = ("psnr", "ssim")


class CorruptRecordError(SkdError):
    """A record file that exists but cannot be read as a JSON object; the message names it."""


def stem_part(name: str) -> str:
    """``name`` with every character outside ``[A-Za-z0-9_-]`` replaced by ``-`` (for file names)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when there is no file; :class:`CorruptRecordError` when it
    cannot be read or is not an object."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptRecordError(f"corrupt record {path}: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CorruptRecordError(f"corrupt record {path}: not valid JSON ({exc})"
                                 if text.strip() else f"corrupt record {path}: the file is empty") from None
    if not isinstance(data, dict):
        raise CorruptRecordError(f"corrupt record {path}: a JSON {type(data).__name__}, not an object")
    return data


def non_finite_metric(record: Mapping[str, Any]) -> str | None:
    """``"psnr=nan"`` for the first non-finite checked metric of a record, else None."""
    metrics = record.get("metrics") or {}
    for key in CHECKED_METRICS:
        value = metrics.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return f"{key}={value}"
    return None


class RunStore:
    """A runs folder. Reading never creates anything; :meth:`writable` checks (once) that jobs can
    be written and names the folder when they cannot."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"runs folder {self.root} is a file, not a folder (--runs-dir)")

    # --- layout ------------------------------------------------------------------------------
    def teacher_dir(self, teacher_id: str) -> Path:
        return self.root / "teachers" / teacher_id

    def cell_dir(self, cell_id: str) -> Path:
        return self.root / "cells" / cell_id

    def arch_dir(self, key: str) -> Path:
        return self.root / "arch" / key

    def manifest_path(self, study: str, key: str) -> Path:
        return self.root / "grids" / stem_part(study) / f"{key}.json"

    def replay_dir(self) -> Path:
        """Where the teacher replay keeps its entries (``bench.execute.replay``)."""
        return self.root / REPLAY

    def weights(self, folder: Path) -> Path:
        """The job's trained weights (safetensors)."""
        return folder / WEIGHTS

    def testset_dir(self, fingerprint: str) -> Path:
        return self.root / "testsets" / fingerprint

    def writable(self) -> RunStore:
        """``self`` once the root exists and a file can be created in it; else a ConfigError."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise ConfigError(f"runs folder {self.root} is not writable: {exc.strerror or exc} (--runs-dir)") from None
        return self

    # --- records -----------------------------------------------------------------------------
    def read_record(self, folder: Path) -> dict[str, Any] | None:
        """The record in ``folder`` (None: none yet); :class:`CorruptRecordError` when unreadable."""
        return read_json(folder / RECORD)

    def write_record(self, folder: Path, record: Mapping[str, Any]) -> Path:
        return atomic_write_json(folder / RECORD, record)

    def clear(self, folder: Path) -> None:
        """Remove a job's record and training checkpoint (``--force``: the job is redone from step 0)."""
        shutil.rmtree(folder / CHECKPOINT, ignore_errors=True)
        (folder / RECORD).unlink(missing_ok=True)

    def set_aside(self, folder: Path) -> Path | None:
        """Rename an unreadable record to ``record.json.corrupt-<unix time>`` (kept for inspection)."""
        path = folder / RECORD
        if not path.exists():
            return None
        target = folder / f"{RECORD}.corrupt-{int(time.time())}"
        os.replace(path, target)
        return target

    def lock(self, folder: Path, name: str = "run.lock") -> FileLock:
        """The lock ``folder/name`` (live only while its owner is proven live: :mod:`bench.store.locks`)."""
        return FileLock(folder / name)

    def status(self, folder: Path) -> tuple[str, dict[str, Any] | None, str | None]:
        """``(status, record, problem)`` of the job in ``folder``: ``running`` while a live runner
        holds its lock; else ``done`` / ``failed`` from its record (a done record with a
        non-finite metric is ``failed``), ``corrupt`` for an unreadable record, ``pending`` for
        none. ``problem`` says why a job is failed or corrupt."""
        try:
            record = self.read_record(folder)
        except CorruptRecordError as exc:
            record, corrupt = None, str(exc)
        else:
            corrupt = None
        lock = self.lock(folder)
        if lock.path.exists() and not lock.is_stale():
            return "running", record, corrupt
        if corrupt:
            return "corrupt", None, corrupt
        if record is None:
            return "pending", None, None
        status = record.get("status", "failed")
        if status == "done" and (bad := non_finite_metric(record)):
            return "failed", record, f"non-finite metric {bad} in {folder / RECORD}"
        return status, record, record.get("error") if status == "failed" else None

    # --- manifests ---------------------------------------------------------------------------
    def write_manifest(self, study: str, key: str, manifest: Mapping[str, Any]) -> Path:
        return atomic_write_json(self.manifest_path(study, key), manifest)

    def read_manifest(self, study: str, key: str) -> dict[str, Any] | None:
        return read_json(self.manifest_path(study, key))

    def manifests(self, study: str) -> list[Path]:
        return sorted((self.root / "grids" / stem_part(study)).glob("*.json"))

    # --- artefacts ---------------------------------------------------------------------------
    def save_images(self, folder: Path, images: Mapping[str, np.ndarray]) -> dict[str, str]:
        """Write uint8 ``H, W, 3`` images as ``folder/outputs/<name>.png``; ``name -> path`` relative
        to the root (what a record stores)."""
        out = {}
        for name, image in images.items():
            path = folder / OUTPUTS / f"{stem_part(name)}.png"
            atomic_write(path, lambda p, a=image: Image.fromarray(np.asarray(a, dtype=np.uint8)).save(p, format="PNG"))
            out[name] = str(path.relative_to(self.root))
        return out

    def save_testset(self, fingerprint: str, pairs: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> str:
        """Write the evaluated ``name -> (lq, gt)`` uint8 pairs once under ``testsets/<fingerprint>``;
        returns that folder relative to the root."""
        folder = self.testset_dir(fingerprint)
        with self.lock(folder, "index.lock"):  # cells that keep other images write the index too
            index = read_json(folder / "index.json") or {}
            missing = {n: p for n, p in pairs.items() if n not in index}
            if missing:
                for name, (lq, gt) in missing.items():
                    index[name] = {"lq": self.save_images(folder / "lq", {name: lq})[name],
                                   "gt": self.save_images(folder / "gt", {name: gt})[name]}
                atomic_write_json(folder / "index.json", index)
        return str(folder.relative_to(self.root))

    def testset(self, relative: str) -> dict[str, dict[str, str]]:
        """``name -> {"lq": path, "gt": path}`` (paths relative to the root) of a saved test set."""
        return read_json(self.root / relative / "index.json") or {}

    def image(self, relative: str) -> np.ndarray:
        """A saved uint8 image, ``H, W, 3``."""
        with Image.open(self.root / relative) as im:
            return np.asarray(im.convert("RGB"))

    def save_diagnostics(self, folder: Path, arrays: Mapping[str, Any]) -> str | None:
        """Write a method's diagnostic tensors to ``folder/diagnostics.safetensors`` (None: nothing)."""
        if not arrays:
            return None
        from safetensors.torch import save_file

        path = folder / DIAGNOSTICS
        atomic_write(path, lambda p: save_file({k: v.contiguous() for k, v in arrays.items()}, str(p)))
        return str(path.relative_to(self.root))

    def diagnostics(self, relative: str) -> dict[str, np.ndarray]:
        from safetensors.numpy import load_file

        return load_file(str(self.root / relative))
