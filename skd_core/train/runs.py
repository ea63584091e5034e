"""Training and scoring one run -- a teacher, or a scratch or distilled student -- from plain settings.

This module is where a result's computation starts (the root of its code identity, see
``bench.codeid``): seeding, model and distiller construction, the training loop, the similarity
probe, the scoring on the test pairs and what is kept for reports (restored test images, the
method's diagnostics). It knows nothing of run folders' layout beyond the folder it is given for
its training checkpoints.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import ImagePair, get_task, load_pairs, train_crops
from ..methods.base import METHODS, Distiller, build_distiller
from ..models import build_model
from ..similarity import SimilarityProbe
from ..taps import DEFAULT_TAPS
from .config import TrainConfig
from .evaluate import centre_crop, evaluate
from .loop import fit

#: the similarity probe batch: centre crops (side a multiple of 8, at most PROBE_SIDE) of the
#: first PROBE_IMAGES test inputs; the diagnostics batch is the first of them
PROBE_IMAGES = 2
PROBE_SIDE = 64


@dataclass(frozen=True)
class DataSettings:
    """Where a run's data come from: data specs (``embedded`` or ``folder:PATH``), the folder layout,
    the evaluation's centre crop (0: whole images) and which restored test images to keep: the
    first ``keep_outputs`` plus those named in ``keep_images``. ``test_split`` is the embedded
    split scored (``"val"`` when tuning: the validation crops, so that test images are never read)."""

    train_data: str
    test_data: str
    layout: str | None = None
    eval_max_side: int = 0
    keep_outputs: int = 2
    keep_images: tuple[str, ...] = ()
    test_split: str = "test"

    def keep(self, index: int, name: str) -> bool:
        """Whether the test pair at ``index`` named ``name`` is kept (for :func:`evaluate`)."""
        return index < self.keep_outputs or name in self.keep_images


@dataclass
class RunResult:
    """A trained and scored run: its record fields (``metrics``, ``training``, ``eval_seconds``,
    ``params`` ...), the model, the kept test images as evaluated (``name -> (lq, gt, output)``,
    uint8 ``H, W, 3`` after the scoring's quantisation) and the method's diagnostic arrays."""

    fields: dict[str, Any]
    model: nn.Module
    kept: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)


def train_teacher(model_name: str, cfg: TrainConfig, data: DataSettings, task: str, seed: int, folder: Path,
                  device: torch.device, progress: bool = True, resume: bool = True) -> RunResult:
    """Train preset ``model_name`` from scratch (pixel L1) with ``cfg`` and score it."""
    torch.manual_seed(seed)
    model = build_model(model_name).to(device)
    distiller = build_distiller("scratch", model).to(device)
    result = _train_and_score(model, distiller, cfg, data, task, seed, folder, device, progress,
                              f"teacher {model_name} {task} seed {seed}", resume)
    result.fields["params"] = sum(p.numel() for p in model.parameters())
    return result


def train_student(student_name: str, method: str, options: Mapping[str, Any], teacher: nn.Module | None,
                  cfg: TrainConfig, data: DataSettings, task: str, seed: int, folder: Path, device: torch.device,
                  progress: bool = True, resume: bool = True, compared_with: nn.Module | None = None) -> RunResult:
    """Train preset ``student_name`` with ``method`` (its ``options``) from the frozen ``teacher`` and
    score it; ``compared_with`` (default: ``teacher``) is the teacher the similarity probe compares
    the student with, e.g. for a scratch student."""
    torch.manual_seed(seed)
    student = build_model(student_name).to(device)
    probe = torch.zeros(1, 3, cfg.crop, cfg.crop, device=device)
    distiller = build_distiller(method, student, teacher, METHODS.get(method).options(options), probe).to(device)
    desc = f"{method} {student_name} {task} seed {seed}"
    result = _train_and_score(student, distiller, cfg, data, task, seed, folder, device, progress, desc, resume,
                              compared_with if compared_with is not None else teacher)
    distiller.close()
    result.fields["params"] = sum(p.numel() for p in student.parameters())
    result.fields["adapter_params"] = sum(p.numel() for p in distiller.method.parameters())
    return result


def _train_and_score(
    model: nn.Module, distiller: Distiller, cfg: TrainConfig, data: DataSettings, task: str, seed: int,
    folder: Path, device: torch.device, progress: bool, desc: str, resume: bool, teacher: nn.Module | None = None,
) -> RunResult:
    """Train, score and keep ``model``'s outputs; with a ``teacher``, the history also logs the
    linear CKA of ``model``'s and the teacher's features at the :data:`DEFAULT_TAPS` both have
    (``sim/<tap>``, see :class:`SimilarityProbe`) on :func:`probe_batch`; models outside the
    Restormer family that have none of them are not probed. A student (a run with a ``teacher``)
    also logs its loss balance (:meth:`Distiller.balance`, history rows with ``monitor``)."""
    crops = train_crops(data.train_data, task, cfg.crop, cfg.steps * cfg.batch, seed, data.layout)
    test = load_pairs(data.test_data, task, data.layout, data.test_split)
    info = get_task(task)
    validate = None
    if cfg.val_every:  # the embedded validation crops (a folder spec has no split: its test pairs)
        val = load_pairs(data.test_data, task, data.layout, "val")
        validate = lambda: evaluate(model, val, info, device, cfg.val_crop).psnr  # noqa: E731

    taps = shared_taps(model, teacher) if teacher is not None else ()
    batch = probe_batch(test, device)
    probe = SimilarityProbe(model, teacher, batch, taps) if taps else None
    monitor = distiller.balance if teacher is not None else None
    result = fit(distiller, crops, cfg, folder, device=device, resume=resume, validate=validate, probe=probe,
                 monitor=monitor, progress=progress, desc=desc)
    t0 = time.perf_counter()
    scores = evaluate(model, test, info, device, data.eval_max_side, data.keep)
    seconds = time.perf_counter() - t0
    fields = {"metrics": scores.to_dict(), "eval_seconds": seconds,
              "training": {"seconds": result.seconds, "steps": result.steps, "history": result.history,
                           "resumed_from": result.resumed_from}}
    diagnostics = distiller.diagnostics(batch[:1], batch[:1])
    if diagnostics:  # with the input they were computed on: a centre crop of the first test input
        diagnostics["input"] = batch[0].cpu()
        fields["diagnostics_input"] = {"image": test[0].name, "side": int(batch.shape[-1])}
    return RunResult(fields, model, scores.kept, diagnostics)


def shared_taps(student: nn.Module, teacher: nn.Module) -> tuple[str, ...]:
    """The :data:`DEFAULT_TAPS` paths that exist in both models."""
    s_names, t_names = dict(student.named_modules()), dict(teacher.named_modules())
    return tuple(p for p in DEFAULT_TAPS if p in s_names and p in t_names)


def probe_batch(pairs: Sequence[ImagePair], device: torch.device) -> torch.Tensor:
    """``B, 3, S, S`` centre crops of the first :data:`PROBE_IMAGES` degraded test inputs, ``S`` the
    largest multiple of 8 up to :data:`PROBE_SIDE` that fits them all."""
    chosen = pairs[:PROBE_IMAGES]
    side = min(PROBE_SIDE, *(min(p.lq.shape[:2]) for p in chosen))
    crops = [centre_crop(p.lq, side) for p in chosen]
    return torch.stack([torch.from_numpy(c.transpose(2, 0, 1).copy()).float() for c in crops]).to(device)
