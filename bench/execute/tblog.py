"""A job's logs beside its record: TensorBoard event files (``tb/``) and a plain ``train.log``.

Both are written from what the job's record holds when it ends -- the training history that
:func:`skd_core.train.loop.fit` keeps, the scores -- plus its kept restorations; nothing is streamed
while it trains, and neither enters the record or any id. The tracker is chosen per process by the
environment variable :data:`LOG_ENV` (``SKD_LOG``): ``tensorboard`` (default) or ``none`` (no event
files); ``train.log`` is written either way.

``train.log`` (appended, plain text): a start line per attempt (a resumed or forced job has several),
then when it ends one line per history row and a line with its scores and seconds, or a failure line
with the error. It is *not* a copy of the job's stderr: the progress lines the training loop prints
there, and Python warnings, are not in it.

TensorBoard tags, by history row (``step``: steps done, except monitor rows: the step measured
before its update)::

    train/loss  train/lr  train/<term>   loss rows: the loss, learning rate and each loss term
    val/<name>                           validation rows (``val_psnr`` -> ``val/psnr``)
    monitor/<name>                       loss-balance rows: value/, grad/, share/ (gradient shares),
                                         cos/<term>, entropy/<tap>/<form> (SKD's attention entropy)
    probe/<name>                         similarity-probe rows (``sim/<tap>``: linear CKA)
    <split>/<metric>                     the final scores (psnr in dB, ssim, input_psnr, input_ssim)
    restored/<image>                     the first kept restorations (HWC, values in [0, 1])
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from skd_core.errors import ConfigError

#: the environment variable that picks the tracker (not part of any config or id)
LOG_ENV = "SKD_LOG"
TRACKERS = ("tensorboard", "none")
#: the event files' folder and the plain log inside a job's folder
TB = "tb"
TRAIN_LOG = "train.log"
#: the final scores logged (record ``metrics`` keys)
METRICS = ("psnr", "ssim", "input_psnr", "input_ssim")
#: how many kept restorations become images
IMAGES = 4


def log_tracker() -> str:
    """The tracker :data:`LOG_ENV` names (default ``tensorboard``); a ConfigError for another value."""
    value = os.environ.get(LOG_ENV, "").strip().lower() or TRACKERS[0]
    if value not in TRACKERS:
        raise ConfigError(f"environment variable {LOG_ENV}={value!r}: must be one of {', '.join(TRACKERS)}")
    return value


def log_start(folder: Path, title: str) -> None:
    """Append the job's start line (local time, ``title``) to its ``train.log``; a bad
    :data:`LOG_ENV` raises here, before the job trains."""
    log_tracker()
    _append(folder, [f"{_now()} start {title}"])


def log_failure(folder: Path, error: str) -> None:
    """Append the job's failure line (local time, ``error``) to its ``train.log``."""
    _append(folder, [f"{_now()} failed: {error}"])


def log_finish(folder: Path, record: Mapping[str, Any],
               kept: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """Append the history and the scores of the finished job ``record`` to its ``train.log`` and,
    unless the tracker is ``none``, write its TensorBoard events to ``folder/tb`` (replacing earlier
    ones); ``kept``: ``name -> (lq, gt, output)`` uint8 ``H, W, 3``. A failure to write the events is
    one warning line on stderr: it never fails a trained job."""
    tracker = log_tracker()
    training = record.get("training") or {}
    steps = training.get("steps", 0)
    _append(folder, [*(_history_line(row, steps) for row in training.get("history", [])),
                     f"{_now()} done: {_scores(record)}"])
    if tracker == "tensorboard":
        try:
            write_tensorboard(folder / TB, record, kept)
        except (OSError, ImportError) as exc:
            print(f"skd-bench: {folder / TB}: TensorBoard events not written: {exc}", file=sys.stderr)


def write_tensorboard(log_dir: Path, record: Mapping[str, Any],
                      kept: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """Write ``record``'s history, scores and the first :data:`IMAGES` of ``kept`` as the event files
    of ``log_dir`` (emptied first), under the tags in this module's docstring."""
    from torch.utils.tensorboard import SummaryWriter

    shutil.rmtree(log_dir, ignore_errors=True)
    training = record.get("training") or {}
    steps = training.get("steps", 0)
    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        for tag, value, step in scalars(training.get("history", [])):
            writer.add_scalar(tag, value, step)
        split = (record.get("config") or {}).get("split", "test")
        metrics = record.get("metrics") or {}
        for name in METRICS:
            if name in metrics:
                writer.add_scalar(f"{split}/{name}", metrics[name], steps)
        for name, (_, _, out) in list(kept.items())[:IMAGES]:
            writer.add_image(f"restored/{name}", np.asarray(out, dtype=np.float32) / 255.0, steps, dataformats="HWC")
    finally:
        writer.close()


def scalars(history: Iterable[Mapping[str, Any]]) -> list[tuple[str, float, int]]:
    """``(tag, value, step)`` of every number in ``history`` (rows of :func:`skd_core.train.loop.fit`)."""
    out = []
    for row in history:
        group = _group(row)
        for key, value in row.items():
            if key in ("step", "monitor") or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            name = key.removeprefix("val_") if group == "val" else key
            out.append((f"{group}/{name}", float(value), int(row["step"])))
    return out


def _group(row: Mapping[str, Any]) -> str:
    if row.get("monitor"):
        return "monitor"
    if "loss" in row:
        return "train"
    if any(k.startswith("val_") for k in row):
        return "val"
    return "probe"


def _history_line(row: Mapping[str, Any], steps: int) -> str:
    values = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
                       if k not in ("step", "monitor"))
    return f"{_group(row)} step {row.get('step')}/{steps}: {values}"


def _scores(record: Mapping[str, Any]) -> str:
    metrics = record.get("metrics") or {}
    training = record.get("training") or {}
    parts = [f"{name} {metrics[name]:.4f}{' dB' if name.endswith('psnr') else ''}" for name in METRICS
             if name in metrics]
    if "seconds" in training:
        parts.append(f"training {training['seconds']:.1f} s")
    if "eval_seconds" in record:
        parts.append(f"scoring {record['eval_seconds']:.1f} s")
    return ", ".join(parts)


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _append(folder: Path, lines: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / TRAIN_LOG, "a", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)
