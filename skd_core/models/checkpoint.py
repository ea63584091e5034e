"""Loading weights safely: official Restormer/BasicSR files, bare state_dicts and safetensors.

``.pth``/``.pt`` files are read with ``torch.load(..., weights_only=True)`` (no pickled code runs);
``.safetensors`` with :mod:`safetensors`. Accepted layouts, tried in order: ``{"params": sd}``
(official Restormer / BasicSR), ``{"params_ema": sd}``, ``{"state_dict": sd}``, ``{"model": sd}``,
or a bare ``sd``. A ``module.`` prefix (DataParallel) is stripped.

A file that cannot be read gives a one-line :class:`CheckpointError` with the reason: empty, not a
torch/safetensors file at all, truncated, or holding pickled objects that safe loading refuses
(never torch's advice to load with ``weights_only=False``, which would run the file's code).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from ..errors import SkdError

CONTAINER_KEYS = ("params", "params_ema", "state_dict", "model")


class CheckpointError(SkdError, RuntimeError):
    """A checkpoint that cannot be read or does not fit the model; the message names file and keys."""


def read_state_dict(path: str | Path, key: str | None = None) -> dict[str, torch.Tensor]:
    """Read a state_dict from ``path``; ``key`` picks a container entry (default: auto-detect)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    obj = read_safetensors(path) if path.suffix == ".safetensors" else read_torch_file(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a state_dict")
    if key is not None:
        if key not in obj:
            raise CheckpointError(f"checkpoint {path} has no entry {key!r}; entries: {sorted(obj)[:10]}")
        obj = obj[key]
    else:
        for k in CONTAINER_KEYS:
            if isinstance(obj.get(k), dict):
                obj = obj[k]
                break
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint {path}: entries are not tensors: {bad[:5]}")
    return state


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file; a :class:`CheckpointError` with the reason otherwise."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    _check_not_empty(path)
    try:
        return load_file(str(path))
    except SafetensorError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: not a valid safetensors file ({exc})") from None


def read_torch_file(path: Path) -> object:
    """``torch.load(path, weights_only=True)`` on CPU; a one-line :class:`CheckpointError` with the
    reason otherwise (see module doc)."""
    _check_not_empty(path)
    with open(path, "rb") as f:
        head = f.read(2)
    if head != b"PK" and head[:1] != b"\x80":  # torch.save writes a zip archive (before torch 1.6: a pickle)
        raise CheckpointError(f"cannot read checkpoint {path}: not a torch (.pth/.pt) or safetensors checkpoint "
                              f"(neither a zip archive nor a pickle)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = next((line.split("WeightsUnpickler error:", 1)[1].split(" was not an allowed")[0].strip()
                       for line in str(exc).splitlines() if "WeightsUnpickler error:" in line), "")
        raise CheckpointError(f"cannot read checkpoint {path}: it holds pickled objects besides tensors, which safe "
                              f"loading (weights_only=True) refuses ({reason or 'unsupported content'}); save a "
                              f"state_dict or a .safetensors file instead") from None
    except Exception as exc:  # truncated zip, corrupt pickle, wrong format
        first = str(exc).strip().split(". ")[0].splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: corrupt or truncated ({first})") from None


def _check_not_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot read checkpoint {path}: file is empty")


def check_fits(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` naming the first missing/unexpected keys and shape differences."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:5])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:5])})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (first: {'; '.join(shapes[:3])})")
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + "; ".join(parts))


def load_checkpoint(model: nn.Module, path: str | Path, key: str | None = None) -> nn.Module:
    """Load ``path`` into ``model`` strictly (see module docstring for accepted layouts)."""
    state = read_state_dict(path, key)
    check_fits(model, state, source=f"checkpoint {path}")
    model.load_state_dict(state, strict=True)
    return model
