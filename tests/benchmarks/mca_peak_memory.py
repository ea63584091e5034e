"""Peak memory of one MCA forward+backward, measured in a fresh process (run as a script).

``python tests/benchmarks/mca_peak_memory.py --form spatial --impl sdpa --tokens 16384 --channels 48``
prints one JSON object. What ``peak_mib`` (MiB = 2^20 bytes) means:

- CPU: growth of the process's resident set during the call -- the kernel's high-water mark
  ``VmHWM`` is reset to the current RSS (``/proc/self/clear_refs`` <- ``5``, Linux >= 4.0) right
  before the call and read after it. A fresh process holds no freed-but-resident memory that the
  call could silently reuse, so this is an upper bound on the call's own allocations. One call at
  64 tokens runs first, so one-time library initialisation is not counted.
- CUDA: ``torch.cuda.max_memory_allocated() - memory_allocated()`` around the call (after a reset).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from skd_core.mca import channel_attention, spatial_attention

CPU_METHOD = "RSS high-water growth (VmHWM reset via /proc/self/clear_refs), fresh process"
CUDA_METHOD = "torch.cuda.max_memory_allocated - memory_allocated, after reset_peak_memory_stats"


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(form: str, impl: str, tokens: int, channels: int, device: str, dtype: str) -> dict[str, object]:
    """One forward+backward of ``form`` MCA on ``1, channels, 1, tokens`` features; see module doc."""
    dt = getattr(torch, dtype)

    def inputs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.randn(1, channels, 1, n, device=device, dtype=dt, requires_grad=True),
                torch.randn(1, channels, 1, n, device=device, dtype=dt))

    def run(student: torch.Tensor, teacher: torch.Tensor) -> None:
        out = (spatial_attention(student, teacher, impl=impl) if form == "spatial"
               else channel_attention(student, teacher))
        out.square().mean().backward()

    run(*inputs(64))  # first use initialises kernels, thread pools and their buffers: not counted
    student, teacher = inputs(tokens)

    def step() -> None:
        run(student, teacher)

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        peak, method = (torch.cuda.max_memory_allocated() - start) / 2**20, CUDA_METHOD
    else:
        Path("/proc/self/clear_refs").write_text("5")
        start_kib = _status_kib("VmRSS")
        t0 = time.perf_counter()
        step()
        seconds = time.perf_counter() - t0
        peak, method = (_status_kib("VmHWM") - start_kib) / 1024, CPU_METHOD
    return {"form": form, "impl": impl if form == "spatial" else "matmul", "tokens": tokens,
            "channels": channels, "dtype": dtype, "device": device, "threads": torch.get_num_threads(),
            "peak_mib": peak, "seconds_one_call": seconds, "memory_method": method}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--form", choices=("channel", "spatial"), required=True)
    parser.add_argument("--impl", choices=("sdpa", "matmul"), default="sdpa")
    parser.add_argument("--tokens", type=int, default=16384)
    parser.add_argument("--channels", type=int, default=48)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()
    print(json.dumps(measure(args.form, args.impl, args.tokens, args.channels, args.device, args.dtype)))


if __name__ == "__main__":
    main()
