"""The training loop shared by teacher, scratch-student and distilled-student runs.

Determinism: batch ``k`` is made of dataset items ``k*B .. k*B+B-1`` and every item is a pure
function of (dataset seed, index), so a run resumed from a checkpoint at step ``k`` sees exactly
the batches an uninterrupted run sees; with the optimizer, scheduler and RNG state restored, CPU
runs end bit-identical. That holds whatever step a checkpoint was written at, so besides every
``cfg.checkpoint_every`` steps a checkpoint is also written every :data:`CHECKPOINT_SECONDS` of wall
time: a long run killed at any point loses at most that much. The wall-time cadence is an argument
of :func:`fit`, not a :class:`TrainConfig` field, because it cannot change results (configs are hashed
into result ids).

Progress: on a terminal a per-step bar; otherwise (a log file, a batch job) one line on stderr every
:data:`LOG_SECONDS`, e.g. ``teacher teacher-cpu denoise25 seed 0: step 120/600, loss 0.0412,
elapsed 1m02s, ETA 4m08s``.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from ..errors import SkdError
from .checkpoint import TrainState, has_checkpoint, load_checkpoint_into, save_checkpoint, save_weights
from .config import TrainConfig
from .schedule import build_optimizer, build_scheduler

#: per-step loss terms are logged this many times per run (plus the last step)
LOG_POINTS = 100
#: the probe runs at this many evenly spaced steps after step 0 (so at step 0 and the last step too)
PROBE_POINTS = 10
#: the loss balance (``monitor``) is measured at this many evenly spaced steps, the first and last included
MONITOR_POINTS = 12
#: a checkpoint is also written after the step that ends this many seconds of wall time since the last one
CHECKPOINT_SECONDS = 300.0
#: without the per-step bar, a progress line goes to stderr this often (seconds)
LOG_SECONDS = 60.0


class NonFiniteLossError(SkdError, FloatingPointError):
    """A loss became NaN/inf; the message names the run folder, the step and each loss term."""


@dataclass
class FitResult:
    steps: int
    seconds: float  # wall time of the optimisation, summed over resumed segments
    history: list[dict[str, float]]
    resumed_from: int  # 0 when the run started fresh


def batch_at(dataset: Dataset, step: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``step``-th batch: items ``step*batch`` .. ``step*batch + batch - 1`` stacked."""
    items = [dataset[step * batch + i] for i in range(batch)]
    return torch.stack([lq for lq, _ in items]), torch.stack([gt for _, gt in items])


def fit(
    distiller: nn.Module,
    dataset: Dataset,
    cfg: TrainConfig,
    run_dir: Path,
    *,
    device: torch.device | str = "cpu",
    resume: bool = False,
    validate: Callable[[], float] | None = None,
    probe: Callable[[], dict[str, float]] | None = None,
    monitor: Callable[[torch.Tensor, torch.Tensor], dict[str, float]] | None = None,
    progress: bool = True,
    desc: str = "train",
    checkpoint_seconds: float | None = CHECKPOINT_SECONDS,
    log_seconds: float | None = LOG_SECONDS,
) -> FitResult:
    """Optimise ``distiller`` (its ``forward(lq, gt)`` returns ``.loss`` and ``.terms``) for
    ``cfg.steps`` steps; checkpoints go to ``run_dir/checkpoint``. ``validate()`` returns the
    validation PSNR in dB and is called every ``cfg.val_every`` steps. ``probe()`` returns named
    measurements (e.g. ``{"sim/latent": 0.8}``) logged as ``{"step": s, **probe()}`` before the first
    step (``s = 0``) and after :data:`PROBE_POINTS` evenly spaced steps, the last included; it runs
    with the global RNG forked, so it cannot change the training. ``monitor(lq, gt)`` (e.g.
    :meth:`~skd_core.methods.base.Distiller.balance`) measures named scalars on the batch of step
    ``s`` before that step's update, at :data:`MONITOR_POINTS` evenly spaced steps from the first
    (``s = 0``) to the last (``s = steps - 1``), logged as ``{"monitor": 1, "step": s, **monitor(lq, gt)}``;
    it too runs with the RNG forked and leaves no gradient behind. Besides every ``cfg.checkpoint_every``
    steps, a checkpoint is written every ``checkpoint_seconds`` of wall time; when the per-step bar is
    not shown (``progress=False`` or not a terminal), a progress line goes to stderr every
    ``log_seconds`` (``None`` disables either)."""
    device = torch.device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ckpt_dir = Path(run_dir) / "checkpoint"
    params = list(distiller.trainable_parameters())
    opt = build_optimizer(params, cfg)
    sched = build_scheduler(opt, cfg)
    state = TrainState()
    if resume and has_checkpoint(ckpt_dir):
        state = load_checkpoint_into(ckpt_dir, distiller, opt, sched)
    resumed_from = state.step
    log_every = max(1, cfg.steps // LOG_POINTS)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if cfg.amp == "bf16" and device.type == "cuda"
        else contextlib.nullcontext()
    )
    probe_steps = {round(k * cfg.steps / PROBE_POINTS) for k in range(PROBE_POINTS + 1)} if probe else set()
    last = cfg.steps - 1
    monitor_steps = ({round(k * last / (MONITOR_POINTS - 1)) for k in range(MONITOR_POINTS)}
                     if monitor else set())
    if state.step == 0 and 0 in probe_steps:
        state.history.append(_probed(0, probe, device))
    # the per-step bar shows on a terminal only (disable=None); elsewhere, progress lines every log_seconds
    bar = tqdm(total=cfg.steps, initial=state.step, desc=desc, disable=None if progress else True, leave=False,
               dynamic_ncols=True)
    t0 = last_checkpoint = last_log = time.perf_counter()
    seconds_before = state.seconds
    log = log_seconds is not None and bar.disable
    for step in range(state.step, cfg.steps):
        lq, gt = (t.to(device, non_blocking=True) for t in batch_at(dataset, step, cfg.batch))
        distiller.train()
        if step in monitor_steps:
            with autocast:
                state.history.append({"monitor": 1, **_probed(step, monitor, device, lq, gt)})
        with autocast:
            out = distiller(lq, gt)
        loss = out.loss.float()
        if not math.isfinite(loss.item()):
            terms = ", ".join(f"{k}={v:.4g}" for k, v in out.terms.items())
            raise NonFiniteLossError(f"non-finite loss {loss.item()} at step {step} of run {run_dir} ({terms})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        done = step + 1
        if done % log_every == 0 or done == cfg.steps:
            state.history.append({"step": done, "loss": loss.item(), "lr": sched.get_last_lr()[0], **out.terms})
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if validate is not None and cfg.val_every and (done % cfg.val_every == 0 or done == cfg.steps):
            state.history.append({"step": done, "val_psnr": validate()})
        if done in probe_steps:
            state.history.append(_probed(done, probe, device))
        bar.update(1)
        now = time.perf_counter()
        if log and now - last_log >= log_seconds:
            last_log = now
            eta = (now - t0) / (done - resumed_from) * (cfg.steps - done)
            print(progress_line(desc, done, cfg.steps, loss.item(), seconds_before + now - t0, eta),
                  file=sys.stderr, flush=True)
        due = checkpoint_seconds is not None and now - last_checkpoint >= checkpoint_seconds
        if done < cfg.steps and (due or (cfg.checkpoint_every and done % cfg.checkpoint_every == 0)):
            state.step, state.seconds = done, seconds_before + now - t0
            save_checkpoint(ckpt_dir, distiller, opt, sched, state)
            last_checkpoint = time.perf_counter()
    bar.close()
    state.step = cfg.steps
    state.seconds = seconds_before + time.perf_counter() - t0
    save_checkpoint(ckpt_dir, distiller, opt, sched, state)
    return FitResult(cfg.steps, state.seconds, state.history, resumed_from)


def progress_line(desc: str, done: int, total: int, loss: float, elapsed: float, eta: float) -> str:
    """``"DESC: step 120/600, loss 0.0412, elapsed 1m02s, ETA 4m08s"`` (``elapsed``: training wall
    time so far, resumed segments included; ``eta``: seconds left at this process's rate)."""
    return f"{desc}: step {done}/{total}, loss {loss:.4g}, elapsed {_clock(elapsed)}, ETA {_clock(eta)}"


def _clock(seconds: float) -> str:
    """``62.3`` -> ``"1m02s"``; ``3725`` -> ``"1h02m05s"``."""
    s = round(seconds)
    h, m = divmod(s // 60, 60)
    return f"{h}h{m:02d}m{s % 60:02d}s" if h else f"{m}m{s % 60:02d}s"


def _probed(step: int, probe: Callable[..., dict[str, float]], device: torch.device,
            *args: torch.Tensor) -> dict[str, float]:
    """``{"step": step, **probe(*args)}`` with the global RNG forked (the run cannot tell it ran)."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return {"step": step, **probe(*args)}


__all__ = ["CHECKPOINT_SECONDS", "LOG_SECONDS", "FitResult", "NonFiniteLossError", "batch_at", "fit",
           "progress_line", "save_weights"]
