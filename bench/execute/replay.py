"""Teacher replay: the frozen teacher's forward computed once per batch and replayed by the other
cells that train on the same batches.

The distilled cells of one task and seed (every method of ``kd_methods``) draw the same batch
stream and run the same frozen teacher on it: 300 identical teacher forwards per cell, 30-60 % of a
distilled step on the ``cpu`` profile (``results/perf.md``). The runner makes one cell of such a
*group* the **recorder**: for every batch its teacher sees, it saves the output of each of the
teacher's top-level blocks (its named children: ``patch_embed``, ``encoder_level1``, ...,
``output``). The group's other cells are **players**: they load those outputs instead of running
the blocks; the teacher's own forward (concatenations, skips, the global residual) still runs,
and so does every block whose output is not on file.

Exact by construction -- a replayed cell equals the cell run without replay bit for bit (tested):

- a block is replayed only inside a top-level teacher call made **without autograd recording**
  (the distiller's teacher pass, the similarity probe), never on a call whose output needs a
  gradient (e.g. SKD's contrastive extractor on the student's output);
- the entry's key is the SHA-256 of the call's input (bytes, shape, dtype) together with the
  teacher's id, the torch version, the device and the intra-op thread count (the things a CPU
  kernel's rounding can depend on);
- a block with a hook on a module **inside** it runs (a tap there must see it run); hooks on the
  block itself fire on the replayed output as usual.

On CUDA "exact" means as exact as the GPU kernels are run to run: bitwise where they are
deterministic.

Entries live in ``<runs>/replay/<host>-<pid>-<tag>/<group>/``, written atomically (temp file,
rename), and are deleted when the group's last cell ends and, in any case, when the run ends. The run
holds the lock ``<host>-<pid>-<tag>.lock`` beside its folder; when the next run starts, every folder
whose lock is stale by the rule of every lock (:mod:`bench.store.locks`), or that has none, is
deleted (a killed run's, on this host or, past the lease, on another). A missing
or unreadable entry is a miss: the player computes the block itself.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.store.locks import FileLock

RECORDER, PLAYER = "record", "play"
ROLES = (RECORDER, PLAYER)


@dataclass(frozen=True)
class ReplaySpec:
    """What the runner gives a cell: the group's entry folder, the cell's role and the teacher's id."""

    folder: Path
    role: str
    teacher: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"replay role must be one of {ROLES}, got {self.role!r}")


@dataclass
class ReplayStats:
    """Counts over one cell: top-level teacher calls eligible for replay, blocks replayed
    (loaded) and blocks run, and entries written (recorder)."""

    calls: int = 0
    replayed: int = 0
    computed: int = 0
    written: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"calls": self.calls, "replayed": self.replayed, "computed": self.computed, "written": self.written}


def _hooked_inside(block: nn.Module) -> bool:
    """Whether any module strictly inside ``block`` has a forward hook or pre-hook."""
    return any(m._forward_hooks or m._forward_pre_hooks for m in block.modules() if m is not block)


class TeacherReplay:
    """Records (``role="record"``) or replays (``role="play"``) ``teacher``'s top-level blocks per
    input batch, by patching their ``forward`` on the instance (the class, its ``state_dict`` and
    module paths stay untouched) until :meth:`close`."""

    def __init__(self, teacher: nn.Module, spec: ReplaySpec) -> None:
        self.teacher, self.spec, self.stats = teacher, spec, ReplayStats()
        self._key: str | None = None  # the entry of the top-level call in progress
        self._loaded: dict[str, torch.Tensor] = {}
        self._new: dict[str, torch.Tensor] = {}
        self._blocks = dict(teacher.named_children())
        for name, block in self._blocks.items():
            block.forward = self._block_forward(name, block.forward)
        teacher.forward = self._teacher_forward(teacher.forward)

    def close(self) -> None:
        """Restore the original ``forward`` methods."""
        for module in (self.teacher, *self._blocks.values()):
            module.__dict__.pop("forward", None)

    def _key_of(self, x: torch.Tensor) -> str:
        h = hashlib.sha256()
        h.update(f"{self.spec.teacher}|{torch.__version__}|{x.device}|{torch.get_num_threads()}|"
                 f"{tuple(x.shape)}|{x.dtype}|".encode())
        h.update(x.detach().contiguous().cpu().numpy().tobytes())
        return h.hexdigest()

    def _path(self, key: str) -> Path:
        return self.spec.folder / f"{key}.pt"

    def _load(self, key: str, device: torch.device) -> dict[str, torch.Tensor]:
        try:
            return torch.load(self._path(key), map_location=device, weights_only=True)
        except Exception:  # missing, or unreadable: a miss, the blocks run
            return {}

    def _save(self, key: str) -> None:
        # temp file + rename like skd_core.atomic.atomic_write, but without its fsync: an entry is a
        # disposable cache written every step (5.9 MB), and a torn or lost one only reads as a miss
        entry = {**self._loaded, **self._new}
        self.spec.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=self.spec.folder)
        os.close(fd)
        try:
            torch.save(entry, tmp)
            os.replace(tmp, self._path(key))
            self.stats.written += 1
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _teacher_forward(self, forward: Any) -> Any:
        def replayed(x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if torch.is_grad_enabled() or args or kwargs or not isinstance(x, torch.Tensor) or self._key is not None:
                return forward(x, *args, **kwargs)
            self.stats.calls += 1
            self._key = self._key_of(x)
            self._loaded, self._new = self._load(self._key, x.device), {}
            try:
                return forward(x)
            finally:  # also when a tap stops the forward early: what ran is kept
                if self.spec.role == RECORDER and self._new:
                    self._save(self._key)
                self._key, self._loaded, self._new = None, {}, {}
        return replayed

    def _block_forward(self, name: str, forward: Any) -> Any:
        block = self._blocks[name]

        def replayed(*args: Any, **kwargs: Any) -> Any:
            if self._key is None or torch.is_grad_enabled():
                return forward(*args, **kwargs)
            if name in self._loaded and not _hooked_inside(block):
                self.stats.replayed += 1
                return self._loaded[name]
            out = forward(*args, **kwargs)
            self.stats.computed += 1
            if isinstance(out, torch.Tensor):
                self._new[name] = out.detach()
            return out
        return replayed


@contextmanager
def replaying(teacher: nn.Module | None, spec: ReplaySpec | None) -> Iterator[TeacherReplay | None]:
    """:class:`TeacherReplay` on ``teacher`` for the ``with`` block (None without a teacher or spec)."""
    if teacher is None or spec is None:
        yield None
        return
    replay = TeacherReplay(teacher, spec)
    try:
        yield replay
    finally:
        replay.close()


def remove(folder: Path) -> None:
    """Delete a replay folder (a group's, or a run's) and everything in it."""
    shutil.rmtree(folder, ignore_errors=True)


def claim_run_folder(base: Path) -> tuple[Path, FileLock]:
    """A new folder for one run's entries under ``base`` (the run store's
    :meth:`~bench.store.RunStore.replay_dir`), named by this host and pid, and the lock
    ``<folder>.lock`` beside it that this run holds while it lives (release it after removing the
    folder). The lock is taken before the folder exists, so a folder without one is never a live run's."""
    folder = base / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    lock = FileLock(_owner_lock(folder))
    if not lock.try_acquire():  # a fresh random name: taken only by a uuid collision
        raise RuntimeError(f"replay folder {folder} is claimed already")
    return folder, lock


def remove_stale(base: Path) -> list[Path]:
    """Delete the run folders whose owner is not proven live by the rule of every lock
    (:mod:`bench.store.locks`: host, pid and process start time; another host's lock within its
    lease), and folders without an owner lock; returns them."""
    gone = []
    for folder in sorted(p for p in base.glob("*-*-*") if p.is_dir()):
        lock = FileLock(_owner_lock(folder))
        if lock.path.exists() and not lock.try_acquire():  # its owner is live
            continue
        remove(folder)
        lock.release()
        gone.append(folder)
    for orphan in base.glob("*-*-*.lock"):  # a run killed between deleting its folder and its lock
        lock = FileLock(orphan)
        if not orphan.with_suffix("").exists() and lock.try_acquire():
            lock.release()
    return gone


def _owner_lock(folder: Path) -> Path:
    return folder.with_name(folder.name + ".lock")
