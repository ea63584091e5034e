"""Training crops: a torch ``Dataset`` of random (degraded, clean) patches, deterministic per index.

Item ``i`` is a pure function of ``(seed, i)``: a generator ``numpy.random.default_rng([seed, i])``
picks an image (uniformly over images, not pixels), a crop position, one of the 8 dihedral
transforms (rotations by 90 degrees, with or without a horizontal flip) and, for clean sources, a
fresh degradation (noise, kernel or streaks). No global random state is used, so any DataLoader
worker count or order gives the same items; there are no epochs: ask for ``length`` = steps x batch
draws and read them in order, and a resumed run skips to index ``step * batch``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from .datasets import FolderImages, FolderPairs, load_clean, parse_spec
from .degrade import degrade
from .folders import find_pairs
from .pairs import CleanImage, DatasetError, ImagePair
from .tasks import TaskInfo, get_task

Source = Sequence[ImagePair] | Sequence[CleanImage]


class TrainCrops(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``(lq, gt)`` crops, float32 CHW RGB tensors of shape ``(3, crop, crop)``; ``gt`` in [0, 1].

    ``source``: fixed pairs (cropped at the same place) or clean images (degraded on the fly by
    ``task``). Every image must be at least ``crop`` x ``crop``, else :class:`DatasetError` names it.
    """

    def __init__(self, source: Source, crop: int, length: int, seed: int,
                 task: str | TaskInfo | None = None) -> None:
        if crop < 1 or length < 1 or seed < 0:
            raise ConfigError(f"need crop >= 1, length >= 1 and seed >= 0; got {crop}, {length}, {seed}")
        if len(source) == 0:
            raise DatasetError("no training images")
        self.source, self.crop, self.length, self.seed = source, crop, length, seed
        self.task = get_task(task) if task is not None else None
        self.sizes = _sizes(source)
        for k, (height, width) in enumerate(self.sizes):
            if height < crop or width < crop:
                raise DatasetError(
                    f"image {_where(source, k)} is {height}x{width}, smaller than the crop {crop}x{crop}")
        if self.task is None and not _is_paired(source):
            raise ConfigError("clean training images need a task to degrade them")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} crops")
        rng = np.random.default_rng([self.seed, index])
        k = int(rng.integers(len(self.source)))
        height, width = self.sizes[k]
        top, left = int(rng.integers(height - self.crop + 1)), int(rng.integers(width - self.crop + 1))
        transform = int(rng.integers(8))
        window = (slice(top, top + self.crop), slice(left, left + self.crop))
        item = self.source[k]
        if isinstance(item, ImagePair):
            lq, gt = item.lq[window], item.gt[window]
        else:
            gt = item.image[window]
            lq = degrade(gt, self.task, rng)
        return _chw(dihedral(lq, transform)), _chw(dihedral(gt, transform))


def train_crops(spec: str, task: str | TaskInfo | None, crop: int, length: int, seed: int,
                layout: str | None = None) -> TrainCrops:
    """Training crops of ``spec``: the embedded train images degraded on the fly by ``task``; a
    paired folder's fixed pairs; or a clean-only folder's images degraded on the fly."""
    parsed = parse_spec(spec, task)
    if parsed.source == "folder":
        chosen, files = find_pairs(parsed.path, layout)
        if chosen.paired:
            return TrainCrops(FolderPairs(files), crop, length, seed, parsed.task)
    return TrainCrops(load_clean(spec, layout, "train"), crop, length, seed, parsed.task)


def dihedral(image: np.ndarray, transform: int) -> np.ndarray:
    """One of the 8 symmetries of the square on an HWC array: rotate by ``transform % 4`` quarter
    turns (counter-clockwise), then flip left-right if ``transform >= 4``. Returns a view."""
    out = np.rot90(image, transform % 4, axes=(0, 1))
    return out[:, ::-1] if transform >= 4 else out


def _chw(image: np.ndarray) -> torch.Tensor:
    """HWC float32 array -> a new CHW float32 tensor (copied: never shares the source's memory)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32).copy())


def _sizes(source: Source) -> list[tuple[int, int]]:
    if isinstance(source, (FolderPairs, FolderImages)):
        return source.sizes  # from file headers, nothing decoded
    return [(item.gt if isinstance(item, ImagePair) else item.image).shape[:2] for item in source]


def _is_paired(source: Source) -> bool:
    if isinstance(source, (FolderPairs, FolderImages)):
        return isinstance(source, FolderPairs)
    return isinstance(source[0], ImagePair)


def _where(source: Source, k: int) -> str:
    if isinstance(source, (FolderPairs, FolderImages)):
        return str(source.files[k].gt)
    item = source[k]
    path = item.gt_path if isinstance(item, ImagePair) else item.path
    return str(path) if path is not None else repr(item.name)
