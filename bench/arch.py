"""Per-architecture measurements for reports: params, MACs/FLOPs and throughput, once per model.

Complexity does not depend on the weights, so it is measured once per (model preset, input size,
device, machine, code version) after a grid's cells ran, in one process with the whole machine,
and stored in ``runs/arch/<key>.json``; throughput is batch 1, fp32, eval + inference_mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from skd_core.atomic import atomic_write_json
from skd_core.complexity.env import cpu_name
from skd_core.complexity.macs import count_macs
from skd_core.complexity.params import count_params
from skd_core.complexity.throughput import measure_throughput
from skd_core.models import build_model

from .jobs import read_record
from .provenance import code_version, config_hash, provenance


def arch_key(model: str, size: tuple[int, int], device: str) -> str:
    import torch

    return config_hash({"model": model, "size": list(size), "device": device, "cpu": cpu_name(),
                        "torch": torch.__version__, "code": code_version()})


def measure_arch(model: str, size: tuple[int, int], runs_dir: Path, device: str = "cpu",
                 repeats: int = 10) -> dict[str, Any]:
    """The stored measurement of ``model`` at ``1 x 3 x H x W``, measured now if missing."""
    folder = runs_dir / "arch" / arch_key(model, size, device)
    record = read_record(folder)
    if record is not None:
        return record
    net = build_model(model)
    shape = (1, 3, *size)
    macs = count_macs(net, shape)
    tput = measure_throughput(net, shape, device=device, warmup=2, repeats=repeats)
    record = {"model": model, "params": count_params(net), **macs.to_record(),
              "throughput": tput.to_record(), "provenance": provenance()}
    atomic_write_json(folder / "record.json", record)
    return record


def measure_all(models: Iterable[tuple[str, tuple[int, int]]], runs_dir: Path, device: str = "cpu") -> list[dict]:
    return [measure_arch(m, tuple(s), runs_dir, device) for m, s in dict.fromkeys(models)]
