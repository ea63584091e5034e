"""Throughput and peak-memory protocol: what each record carries, exact memory of known allocations,
ratios between models. No absolute time is asserted."""

from __future__ import annotations

import pytest
import torch

from skd_core.complexity.env import environment, input_shape, precision, resolve_device
from skd_core.complexity.memory import inference_memory, measure_peak, tensor_bytes, train_step_memory
from skd_core.complexity.throughput import batch_sweep, measure_throughput
from skd_core.errors import ConfigError
from skd_core.models import build_model

CUDA = torch.cuda.is_available()
SHAPE = (1, 3, 32, 32)


def test_record_carries_protocol_and_environment() -> None:
    rec = measure_throughput(build_model("student-smoke"), SHAPE, warmup=1, repeats=3)
    assert rec.median_ms > 0 and rec.iqr_ms >= 0
    assert rec.images_per_s == pytest.approx(1000 * rec.batch / rec.median_ms)
    assert rec.ms_per_image == pytest.approx(rec.median_ms / rec.batch)
    flat = rec.to_record()
    for key, value in {
        "device": "cpu", "dtype": "fp32", "batch": 1, "input_shape": SHAPE, "channels_last": False,
        "compile_mode": None, "warmup": 1, "repeats": 3, "timer": "time.perf_counter",
        "torch_version": torch.__version__, "threads": torch.get_num_threads(),
    }.items():
        assert flat[key] == value, key
    assert flat["device_name"] and flat["peak_memory_bytes"] > 0 and "profiler" in flat["memory_method"]


def test_threads_recorded_and_restored() -> None:
    before = torch.get_num_threads()
    rec = measure_throughput(build_model("student-smoke"), SHAPE, warmup=0, repeats=1, threads=1, memory=False)
    assert rec.env.threads == 1 and rec.peak_memory_bytes is None
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("dtype,channels_last", [("bf16", False), ("fp32", True)])
def test_bf16_autocast_and_channels_last_run_on_cpu(dtype: str, channels_last: bool) -> None:
    rec = measure_throughput(build_model("student-smoke"), SHAPE, dtype=dtype, channels_last=channels_last,
                             warmup=1, repeats=1, memory=False)
    assert (rec.dtype, rec.channels_last) == (dtype, channels_last)


def test_batch_sweep() -> None:
    recs = batch_sweep(build_model("student-smoke"), SHAPE[1:], [1, 2], warmup=0, repeats=1, memory=False)
    assert [r.input_shape for r in recs] == [(1, 3, 32, 32), (2, 3, 32, 32)]


def test_bad_settings_are_config_errors() -> None:
    model = build_model("student-smoke")
    with pytest.raises(ConfigError, match="tf32' exists only on CUDA"):
        with precision("tf32", torch.device("cpu")):
            pass
    with pytest.raises(ConfigError, match="dtype must be one of"):
        measure_throughput(model, SHAPE, dtype="fp16")
    with pytest.raises(ConfigError, match="compile mode"):
        measure_throughput(model, SHAPE, compile_mode="fastest")
    with pytest.raises(ConfigError, match="not a multiple of 8"):
        input_shape(model, 1, 30, 32)
    if not CUDA:
        with pytest.raises(ConfigError, match="cuda.is_available"):
            environment("cuda")


def test_cpu_peak_of_known_allocations() -> None:
    """ones * ones: three float32 4 MB tensors alive at once, on top of what was live."""
    held = torch.zeros(250_000)
    peak = measure_peak(lambda: torch.ones(1000, 1000) * torch.ones(1000, 1000), torch.device("cpu"),
                        [held, held[:10]])
    assert peak.start_bytes == 1_000_000  # a storage shared by views counts once
    assert peak.peak_bytes == 1_000_000 + 12_000_000


def test_inference_and_train_step_memory_ratios() -> None:
    teacher, student = build_model("teacher-smoke"), build_model("student-smoke")
    t_inf, s_inf = inference_memory(teacher, SHAPE), inference_memory(student, SHAPE)
    assert s_inf.peak_bytes < t_inf.peak_bytes
    x_bytes = 4 * torch.Size(SHAPE).numel()
    assert s_inf.start_bytes == tensor_bytes(student.parameters()) + x_bytes
    s_train = train_step_memory(student, SHAPE)
    assert s_train.peak_bytes > s_inf.peak_bytes
    # weights + Adam's two moments (+ one scalar step per tensor) + input + target
    params, tensors = tensor_bytes(student.parameters()), len(list(student.parameters()))
    assert 3 * params + 2 * x_bytes <= s_train.start_bytes <= 3 * params + 2 * x_bytes + 8 * tensors
    assert s_train.to_record()["mode"] == "train_step" and s_train.env.device == "cpu"


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", ["fp32", "tf32", "bf16"])
def test_cuda_protocol(dtype: str) -> None:
    rec = measure_throughput(build_model("student-smoke"), SHAPE, device="cuda", dtype=dtype, warmup=2, repeats=3)
    assert rec.timer == "torch.cuda.Event" and rec.env.cuda_version and rec.env.device.startswith("cuda")
    assert rec.peak_memory_bytes > 0 and "max_memory_allocated" in rec.memory_method
    assert train_step_memory(build_model("student-smoke"), SHAPE, device="cuda").peak_bytes > rec.peak_memory_bytes


def test_device_names() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ConfigError, match="'gpu'"):
        resolve_device("gpu")
