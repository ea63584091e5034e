"""The data types every loader returns, and the one error for bad data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SkdError


class DatasetError(SkdError):
    """Data that cannot be used: a missing folder, an unpaired file, an unreadable image, a size
    mismatch, an image smaller than the crop. The message names the file."""


@dataclass(frozen=True, eq=False)
class ImagePair:
    """A degraded input ``lq`` and its clean target ``gt``: float32, HWC, RGB, same shape.

    ``gt`` is in [0, 1]; ``lq`` is in [0, 1] except for Gaussian noise, which is not clipped.
    ``lq_path``/``gt_path`` are the files read (``None`` for embedded or synthesised images).
    """

    name: str
    lq: np.ndarray
    gt: np.ndarray
    lq_path: Path | None = None
    gt_path: Path | None = None


@dataclass(frozen=True, eq=False)
class CleanImage:
    """A clean image to degrade synthetically: float32, HWC, RGB, in [0, 1]."""

    name: str
    image: np.ndarray
    path: Path | None = None

    @property
    def where(self) -> str:
        """The file if there is one, else the name: what an error message should show."""
        return str(self.path) if self.path is not None else repr(self.name)
