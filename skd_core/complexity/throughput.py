"""Inference throughput and latency, by the protocol of docs/design.md section 3.

Protocol: the model in ``eval()`` under ``torch.inference_mode()``, one fixed input shape (random
values in [0, 1]), ``warmup`` untimed forward passes (they also absorb ``torch.compile``), then
``repeats`` timed passes, each timed alone:

- CUDA: ``torch.cuda.Event(enable_timing=True)`` around the forward, ``torch.cuda.synchronize()``
  after it, so a time is the GPU time of the whole batch;
- CPU: ``time.perf_counter()`` around the forward, with ``torch.get_num_threads()`` threads
  (recorded; ``threads`` sets it for the run).

Reported: median and inter-quartile range (75th - 25th percentile) of the per-batch time in
milliseconds, ms/image = median / batch, images/s = 1000 x batch / median, and the peak memory of
one forward of the same (compiled or eager) model
(:mod:`skd_core.complexity.memory`). Absolute times depend on the machine and its
load: compare ratios measured in one run, never absolute times across runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .env import Environment, environment, num_threads, precision, resolve_device
from .memory import inference_memory

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class ThroughputRecord:
    """One throughput measurement; times in milliseconds per batch unless named per image."""

    input_shape: tuple[int, ...]
    dtype: str
    channels_last: bool
    compile_mode: str | None
    warmup: int
    repeats: int
    timer: str
    median_ms: float
    iqr_ms: float
    peak_memory_bytes: int | None
    memory_method: str | None
    env: Environment

    @property
    def batch(self) -> int:
        return self.input_shape[0]

    @property
    def ms_per_image(self) -> float:
        """Median milliseconds per image."""
        return self.median_ms / self.batch

    @property
    def images_per_s(self) -> float:
        """Images per second at the median batch time."""
        return 1000.0 * self.batch / self.median_ms

    def to_record(self) -> dict[str, Any]:
        """A flat JSON-ready dict (environment fields inlined)."""
        rec = asdict(self)
        env = rec.pop("env")
        return {**rec, "batch": self.batch, "ms_per_image": self.ms_per_image, "images_per_s": self.images_per_s,
                **env}


def _timed(run: Callable[[], object], device: torch.device, repeats: int) -> tuple[str, list[float]]:
    times: list[float] = []
    if device.type == "cuda":
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        return "torch.cuda.Event", times
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1000.0)
    return "time.perf_counter", times


def measure_throughput(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    device: str = "cpu",
    dtype: str = "fp32",
    channels_last: bool = False,
    compile_mode: str | None = None,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
    memory: bool = True,
) -> ThroughputRecord:
    """Time ``model`` on a ``input_shape`` (B, C, H, W) batch by the module's protocol.

    ``dtype``: ``fp32`` | ``tf32`` (CUDA) | ``bf16`` (autocast); ``compile_mode``: ``None`` (eager)
    or a ``torch.compile`` mode; ``memory``: also measure the peak memory of one forward.
    Moves ``model`` to ``device`` (and to channels_last when asked).
    """
    dev = resolve_device(device)
    if compile_mode is not None and compile_mode not in COMPILE_MODES:
        raise ConfigError(f"compile mode must be one of {COMPILE_MODES}, got {compile_mode!r}")
    if warmup < 0 or repeats < 1:
        raise ConfigError(f"need warmup >= 0 and repeats >= 1, got {warmup} and {repeats}")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device=dev, memory_format=fmt).eval()
    x = torch.rand(*input_shape, device=dev).contiguous(memory_format=fmt)
    runner = torch.compile(model, mode=compile_mode) if compile_mode else model
    with num_threads(threads):
        with torch.inference_mode(), precision(dtype, dev):
            for _ in range(warmup):
                runner(x)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            timer, times = _timed(lambda: runner(x), dev, repeats)
        env = environment(dev)
        peak = inference_memory(runner, input_shape, device=str(dev), dtype=dtype, channels_last=channels_last) \
            if memory else None
    q25, q50, q75 = np.percentile(times, [25, 50, 75])
    return ThroughputRecord(
        input_shape=tuple(int(s) for s in input_shape), dtype=dtype, channels_last=channels_last,
        compile_mode=compile_mode, warmup=warmup, repeats=repeats, timer=timer,
        median_ms=float(q50), iqr_ms=float(q75 - q25),
        peak_memory_bytes=peak.peak_bytes if peak else None, memory_method=peak.method if peak else None,
        env=env,
    )


def batch_sweep(
    model: nn.Module, image_shape: Sequence[int], batches: Sequence[int], **kwargs: Any
) -> list[ThroughputRecord]:
    """:func:`measure_throughput` at each batch size for ``image_shape`` (C, H, W)."""
    return [measure_throughput(model, (b, *image_shape), **kwargs) for b in batches]
