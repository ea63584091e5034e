"""Training checkpoints that resume exactly.

A checkpoint folder holds ``weights.safetensors`` (the trainable modules: student and adapters)
and ``state.pt`` (step, optimizer, scheduler, RNG states, history), both written atomically and
read back with ``weights_only=True``. The weights carry their step in the file's metadata: a pair
whose steps differ (a kill between the two writes) is not a checkpoint, and training starts over
(which ends bit-identical too, only later).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from ..atomic import atomic_write
from ..models.checkpoint import CheckpointError, check_fits, read_safetensors, read_torch_file

WEIGHTS = "weights.safetensors"
STATE = "state.pt"
_STATE_KEYS = ("step", "history", "seconds", "optimizer", "scheduler", "rng_torch", "rng_cuda")


@dataclass
class TrainState:
    """Everything besides the weights that a resumed run needs to continue bit-for-bit."""

    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0  # wall time spent training before this checkpoint


def save_weights(module: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    atomic_write(path, lambda p: save_file(state, str(p), metadata=metadata))


def save_checkpoint(
    folder: Path, module: nn.Module, opt: torch.optim.Optimizer, sched: Any, state: TrainState
) -> None:
    """Write weights then state; ``state.pt`` last, so its presence means a complete checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(module, folder / WEIGHTS, {"step": str(state.step)})
    payload = {
        "step": state.step,
        "history": state.history,
        "seconds": state.seconds,
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng_torch": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    atomic_write(folder / STATE, lambda p: torch.save(payload, p))


def has_checkpoint(folder: Path) -> bool:
    """Both files exist and belong to the same step (see the module docstring)."""
    if not ((folder / STATE).is_file() and (folder / WEIGHTS).is_file()):
        return False
    try:
        with safe_open(str(folder / WEIGHTS), "pt") as f:
            step = (f.metadata() or {}).get("step")
        payload = read_torch_file(folder / STATE)
    except (OSError, ValueError, CheckpointError, SafetensorError):
        return False
    return isinstance(payload, dict) and step == str(payload.get("step"))


def load_checkpoint_into(folder: Path, module: nn.Module, opt: torch.optim.Optimizer, sched: Any) -> TrainState:
    """Restore weights, optimizer, scheduler and RNG state from ``folder``."""
    weights = read_safetensors(folder / WEIGHTS)
    payload = read_torch_file(folder / STATE)
    if not isinstance(payload, dict) or not set(_STATE_KEYS) <= set(payload):
        raise CheckpointError(f"training checkpoint {folder / STATE} is not a state written by this loop")
    check_fits(module, weights, source=f"training checkpoint {folder / WEIGHTS}")
    module.load_state_dict(weights, strict=True)
    opt.load_state_dict(payload["optimizer"])
    sched.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["rng_torch"])
    if payload["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["rng_cuda"])
    return TrainState(step=payload["step"], history=payload["history"], seconds=payload["seconds"])
