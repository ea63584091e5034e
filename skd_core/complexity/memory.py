"""Peak memory of inference and of one training step (L1 loss + Adam step), on CUDA and on CPU.

What is measured: **tensor bytes allocated by torch**, at the peak of the call, including what was
already live when it started (weights, input, optimizer state) -- ``peak_bytes`` -- and that
starting amount -- ``start_bytes``.

- CUDA: ``torch.cuda.memory_allocated()`` before the call and ``torch.cuda.max_memory_allocated()``
  after ``torch.cuda.reset_peak_memory_stats()`` (caching-allocator blocks, so rounded up to its
  block sizes; not ``nvidia-smi``'s reserved memory, not the CUDA context).
- CPU: the running sum of the allocation/free events of torch's CPU allocator recorded by
  ``torch.profiler`` (``profile_memory=True``) during the call, added to the bytes of the tensors
  live at its start (model parameters and buffers, gradients, optimizer state, inputs). This counts
  kernel temporaries that go through torch's allocator; it is **not** process RSS (no interpreter,
  libraries, or malloc caching), so it is the CPU analogue of ``max_memory_allocated``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.functional import l1_loss
from torch.profiler import ProfilerActivity, profile

from .env import Environment, environment, precision, resolve_device

CUDA_METHOD = "torch.cuda.max_memory_allocated after reset_peak_memory_stats"
CPU_METHOD = "torch.profiler CPU allocator events (profile_memory=True) + live tensor bytes at start"
MODES = ("inference", "train_step")


@dataclass(frozen=True)
class PeakMemory:
    """``peak_bytes``: most tensor bytes allocated at once during the call (``start_bytes`` included)."""

    peak_bytes: int
    start_bytes: int
    method: str


@dataclass(frozen=True)
class MemoryRecord:
    """Peak memory of one ``mode`` ("inference" or "train_step") at ``input_shape`` (B, C, H, W)."""

    mode: str
    input_shape: tuple[int, ...]
    dtype: str
    channels_last: bool
    peak_bytes: int
    start_bytes: int
    method: str
    env: Environment

    def to_record(self) -> dict[str, Any]:
        """A flat JSON-ready dict (environment fields inlined; ``peak_mib`` in MiB = 2^20 bytes)."""
        rec = asdict(self)
        env = rec.pop("env")
        return {**rec, "batch": self.input_shape[0], "peak_mib": self.peak_bytes / 2**20, **env}


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (a storage shared by views counts once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 goes to ``/dev/null`` for the block (what C++ code writes there too), then back."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def measure_peak(fn: Callable[[], object], device: torch.device, live: Iterable[torch.Tensor] = ()) -> PeakMemory:
    """Peak tensor memory while ``fn()`` runs on ``device`` (see module doc). ``live``: on CPU, the
    tensors alive at the start (on CUDA the allocator knows them)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return PeakMemory(torch.cuda.max_memory_allocated(device), start, CUDA_METHOD)
    start = tensor_bytes(live)
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with quiet_stderr():  # kineto prints "USDT: ... profiler_start" (and _stop) on fd 2
        prof.start()
    try:
        fn()
    finally:
        with quiet_stderr():
            prof.stop()
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type().name == "CPU"),
        key=lambda e: e.start_ns(),
    )
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return PeakMemory(start + peak, start, CPU_METHOD)


def _prepare(model: nn.Module, shape: Sequence[int], device: torch.device, channels_last: bool) -> torch.Tensor:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device=device, memory_format=fmt)
    return torch.rand(*shape, device=device).contiguous(memory_format=fmt)


def inference_memory(
    model: nn.Module, input_shape: Sequence[int], *, device: str = "cpu", dtype: str = "fp32",
    channels_last: bool = False,
) -> MemoryRecord:
    """Peak memory of one forward pass in eval mode under ``torch.inference_mode()`` (after one
    warm-up pass). Moves ``model`` to ``device``."""
    dev = resolve_device(device)
    x = _prepare(model, input_shape, dev, channels_last)
    model.eval()
    with torch.inference_mode(), precision(dtype, dev):
        model(x)
        peak = measure_peak(lambda: model(x), dev, [*model.parameters(), *model.buffers(), x])
    return MemoryRecord("inference", tuple(input_shape), dtype, channels_last, peak.peak_bytes, peak.start_bytes,
                        peak.method, environment(dev))


def train_step_memory(
    model: nn.Module, input_shape: Sequence[int], *, device: str = "cpu", dtype: str = "fp32",
    channels_last: bool = False, lr: float = 2e-4,
) -> MemoryRecord:
    """Peak memory of one training step: forward, L1 loss to a target, backward, Adam step,
    ``zero_grad(set_to_none=True)``. Measured on the second step, so Adam's state (2 x params) is
    live from the start, as in steady-state training. Moves ``model`` to ``device`` and trains it
    (on random data) -- pass a copy if the weights matter."""
    dev = resolve_device(device)
    x = _prepare(model, input_shape, dev, channels_last)
    target = torch.rand_like(x)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step() -> None:
        with precision(dtype, dev):
            loss = l1_loss(model(x), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    state = [t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    peak = measure_peak(step, dev, [*model.parameters(), *model.buffers(), *state, x, target])
    return MemoryRecord("train_step", tuple(input_shape), dtype, channels_last, peak.peak_bytes, peak.start_bytes,
                        peak.method, environment(dev))
