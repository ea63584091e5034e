"""Per-architecture measurements for reports: params, MACs/FLOPs and throughput, once per model.

Complexity does not depend on the weights, so it is measured once per (model preset, input size,
device, machine, code identity of the model and the counters) after a grid's cells ran, in one
process with the whole machine, and stored in the run store's ``arch/<key>/record.json``;
throughput is batch 1, fp32, eval + inference_mode. The runner writes each model's key into the
grid's manifest, so reports read measurements without recomputing keys.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import torch

from bench.spec.codeid import code_identity
from bench.store import CorruptRecordError, RunStore
from skd_core.complexity.env import cpu_name
from skd_core.complexity.macs import count_macs
from skd_core.complexity.params import count_params
from skd_core.complexity.throughput import measure_throughput
from skd_core.models import MODELS, build_model

from .cells import arch_config
from .provenance import config_hash, provenance

#: the modules whose code decides a measurement, besides the model's own
MEASURE_MODULES = ("skd_core.complexity.macs", "skd_core.complexity.params", "skd_core.complexity.throughput")


def arch_key(model: str, size: tuple[int, int], device: str) -> str:
    code = code_identity([*MEASURE_MODULES, MODELS.get(model).factory.__module__])
    return config_hash({"arch": arch_config(model), "size": list(size), "device": device, "cpu": cpu_name(),
                        "torch": torch.__version__, "code": code})


def measure_arch(model: str, size: tuple[int, int], store: RunStore, device: str = "cpu",
                 repeats: int = 10) -> str:
    """The key of the stored measurement of ``model`` at ``1 x 3 x H x W``, measured now if missing
    (or unreadable, which is set aside)."""
    key = arch_key(model, size, device)
    folder = store.arch_dir(key)
    try:
        if store.read_record(folder) is not None:
            return key
    except CorruptRecordError:
        store.set_aside(folder)
    net = build_model(model)
    shape = (1, 3, *size)
    macs = count_macs(net, shape)
    tput = measure_throughput(net, shape, device=device, warmup=2, repeats=repeats)
    store.write_record(folder, {"model": model, "params": count_params(net), **macs.to_record(),
                                "throughput": tput.to_record(), "provenance": provenance()})
    return key


def measure_all(models: Iterable[tuple[str, tuple[int, int]]], store: RunStore, device: str = "cpu") -> dict[str, str]:
    """``model -> key`` of each ``(model, (H, W))`` measured (once each); a model whose measurement
    fails is left out with one line on stderr (its cells' results stand; the report says what is
    missing)."""
    keys = {}
    for model, size in dict.fromkeys(models):
        try:
            keys[model] = measure_arch(model, tuple(size), store, device)
        except Exception as exc:
            print(f"skd-bench: measuring {model} at {size[0]}x{size[1]} failed: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
    return keys
