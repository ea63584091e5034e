"""Whole-image testing: pad to a multiple of the network's down-sampling factor, crop back."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

from ..errors import ConfigError


def pad_to_multiple(x: torch.Tensor, multiple: int = 8) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad the last two dims (H, W) of a CHW or NCHW tensor at the bottom and right to a
    multiple of ``multiple``, as the official Restormer test scripts do; also return the original
    ``(h, w)`` for :func:`unpad`. Reflection excludes the edge pixel (``torch`` ``"reflect"``);
    a pad wider than the image is done in several reflections."""
    height, width = x.shape[-2:]
    if min(height, width) < 2:
        raise ConfigError(f"cannot reflect-pad an image of size {height}x{width}")
    pad_h, pad_w = -height % multiple, -width % multiple
    while pad_h or pad_w:
        step_h, step_w = min(pad_h, x.shape[-2] - 1), min(pad_w, x.shape[-1] - 1)
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return x, (height, width)


def unpad(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The top-left ``size = (h, w)`` of the last two dims: undoes :func:`pad_to_multiple`."""
    return x[..., : size[0], : size[1]]
