"""What a measurement ran on and under which numeric settings: device, versions, threads, dtype.

Every throughput and memory record carries an :class:`Environment`. Dtypes (docs/design.md section 3):

- ``fp32``: float32 with TF32 *off* for CUDA matmuls and cuDNN convolutions (cuDNN's default is on);
- ``tf32``: float32 tensors, TF32 tensor-core math on for CUDA matmuls and convolutions (CUDA only);
- ``bf16``: float32 weights under ``torch.autocast(dtype=torch.bfloat16)`` (CUDA and CPU).
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError

DTYPES = ("fp32", "tf32", "bf16")
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Environment:
    """Device and software a measurement ran on; ``threads`` = ``torch.get_num_threads()``."""

    device: str
    device_name: str
    torch_version: str
    cuda_version: str | None
    cudnn_version: int | None
    threads: int


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda[:i]"`` or ``"auto"`` (CUDA when available, else CPU) as a device; a clear
    error for an unknown name or when CUDA is asked for but absent."""
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in DEVICES:
        raise ConfigError(f"device must be one of {DEVICES} or 'auto', got {str(device)!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but torch.cuda.is_available() is False on this machine")
    return dev


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment(device: str | torch.device) -> Environment:
    """The :class:`Environment` of ``device`` now."""
    dev = resolve_device(device)
    is_cuda = dev.type == "cuda"
    return Environment(
        device=str(dev),
        device_name=torch.cuda.get_device_name(dev) if is_cuda else cpu_name(),
        torch_version=torch.__version__,
        cuda_version=torch.version.cuda,
        cudnn_version=torch.backends.cudnn.version() if is_cuda else None,
        threads=torch.get_num_threads(),
    )


def check_dtype(dtype: str, device: torch.device) -> None:
    """A clear error for a dtype that is unknown or does not exist on ``device``."""
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype == "tf32" and device.type != "cuda":
        raise ConfigError("dtype 'tf32' exists only on CUDA; use fp32 or bf16 on CPU")


@contextlib.contextmanager
def precision(dtype: str, device: torch.device) -> Iterator[None]:
    """Run the block under ``dtype`` (see module doc); CUDA TF32 flags are restored afterwards."""
    check_dtype(dtype, device)
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = dtype == "tf32"
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@contextlib.contextmanager
def num_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` for the block (``None``: leave as is)."""
    saved = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def input_shape(model: torch.nn.Module, batch: int, height: int, width: int, channels: int = 3) -> tuple[int, ...]:
    """``(batch, channels, height, width)``, checked against ``model.size_divisor`` (Restormer: 8)."""
    divisor = int(getattr(model, "size_divisor", 1))
    if batch < 1 or height < 1 or width < 1:
        raise ConfigError(f"batch and size must be positive, got batch {batch}, size {height}x{width}")
    if height % divisor or width % divisor:
        raise ConfigError(
            f"input size {height}x{width} is not a multiple of {divisor}, which {type(model).__name__} "
            f"needs ({divisor} = 2^levels of downsampling); e.g. use "
            f"{height // divisor * divisor or divisor}x{width // divisor * divisor or divisor}"
        )
    return (batch, channels, height, width)
