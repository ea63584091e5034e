"""Data specs (``embedded[:TASK]`` or ``folder:PATH``) -> sequences of test pairs or clean images.

Embedded sets are small and returned as lists. Folder sets are returned as lazy sequences that read
their files on access, so that a 2,000-pair training folder does not have to fit in memory; pairing,
header sizes and header readability are checked at once, pixels when an item is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from ..errors import ConfigError
from .degrade import degrade, image_rng
from .embedded import load_embedded
from .folders import FilePair, find_pairs
from .images import image_size, read_image
from .pairs import CleanImage, DatasetError, ImagePair
from .tasks import TaskInfo, get_task

SPEC_FORMS = "'embedded', 'embedded:TASK' or 'folder:PATH'"


@dataclass(frozen=True)
class DataSpec:
    """A parsed data spec: ``source`` is ``"embedded"`` or ``"folder"``."""

    source: str
    task: TaskInfo | None = None
    path: Path | None = None


def parse_spec(spec: str, task: str | TaskInfo | None = None) -> DataSpec:
    """Parse ``spec``; a task in the spec and a different ``task`` argument is a :class:`ConfigError`."""
    kind, _, rest = spec.partition(":")
    if kind == "embedded":
        if rest and task is not None and get_task(task).name != rest:
            raise ConfigError(f"data spec {spec!r} names task {rest!r} but task {get_task(task).name!r} was given")
        name = rest or task
        return DataSpec("embedded", get_task(name) if name else None)
    if kind == "folder" and rest:
        return DataSpec("folder", get_task(task) if task is not None else None, Path(rest).expanduser())
    raise ConfigError(f"data spec {spec!r} not understood; use {SPEC_FORMS}")


def load_pairs(spec: str, task: str | TaskInfo | None = None, layout: str | None = None,
               split: str = "test") -> Sequence[ImagePair]:
    """The (degraded, clean) pairs of ``spec``, sorted by name; arrays float32, HWC, RGB.

    ``embedded``: the ``split`` images (``"test"`` or ``"train"``), each degraded once by the task
    with :func:`.degrade.image_rng` (a task is required). ``folder:PATH``: the pairs found by the
    ``layout`` preset (detected when ``None``); ``split`` is not used. A clean-only folder needs a
    task, whose degradation is applied once per image as for the embedded set.
    """
    parsed = parse_spec(spec, task)
    if parsed.source == "embedded":
        info = _need_task(parsed, spec)
        return [ImagePair(c.name, degrade(c.image, info, image_rng(info, c.name)), c.image)
                for c in load_embedded(split)]
    chosen, files = find_pairs(parsed.path, layout)
    if not chosen.paired:
        _need_task(parsed, f"{spec} (layout {chosen.name!r} has clean images only)")
    return FolderPairs(files, parsed.task)


def load_clean(spec: str, layout: str | None = None, split: str = "train") -> Sequence[CleanImage]:
    """The clean images of ``spec`` (to degrade on the fly): the embedded ``split``, or the targets
    of a folder (of any layout), read lazily. Float32, HWC, RGB in [0, 1]."""
    parsed = parse_spec(spec)
    if parsed.source == "embedded":
        return load_embedded(split)
    return FolderImages(find_pairs(parsed.path, layout)[1])


def _need_task(parsed: DataSpec, what: str) -> TaskInfo:
    if parsed.task is None:
        raise ConfigError(f"{what}: a task is needed to make the degraded inputs (e.g. 'embedded:denoise25')")
    return parsed.task


class FolderPairs(Sequence[ImagePair]):
    """Pairs read from files on access. Built from :func:`.folders.find_pairs`; a pair without an
    input file is made from its target by ``task`` (once per image, :func:`.degrade.image_rng`).
    Construction checks every header: readable, and input and target of one size."""

    def __init__(self, files: list[FilePair], task: TaskInfo | None = None) -> None:
        self.files = files
        self.task = task
        self.sizes = [_pair_size(f) for f in files]

    def __len__(self) -> int:
        return len(self.files)

    @overload
    def __getitem__(self, index: int) -> ImagePair: ...
    @overload
    def __getitem__(self, index: slice) -> list[ImagePair]: ...

    def __getitem__(self, index: int | slice) -> ImagePair | list[ImagePair]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        f = self.files[index]
        gt = read_image(f.gt)
        if f.lq is None:
            if self.task is None:
                raise ConfigError(f"{f.gt} has no degraded input and no task was given to make one")
            return ImagePair(f.name, degrade(gt, self.task, image_rng(self.task, f.name)), gt, None, f.gt)
        lq = read_image(f.lq)
        if lq.shape != gt.shape:
            raise _mismatch(f, lq.shape[:2], gt.shape[:2])
        return ImagePair(f.name, lq, gt, f.lq, f.gt)


class FolderImages(Sequence[CleanImage]):
    """The target (clean) images of folder pairs, read on access; float32 HWC RGB in [0, 1]."""

    def __init__(self, files: list[FilePair]) -> None:
        self.files = files
        self.sizes = [image_size(f.gt) for f in files]

    def __len__(self) -> int:
        return len(self.files)

    @overload
    def __getitem__(self, index: int) -> CleanImage: ...
    @overload
    def __getitem__(self, index: slice) -> list[CleanImage]: ...

    def __getitem__(self, index: int | slice) -> CleanImage | list[CleanImage]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        f = self.files[index]
        return CleanImage(f.name, read_image(f.gt), f.gt)


def _pair_size(f: FilePair) -> tuple[int, int]:
    gt = image_size(f.gt)
    if f.lq is not None and image_size(f.lq) != gt:
        raise _mismatch(f, image_size(f.lq), gt)
    return gt


def _mismatch(f: FilePair, lq: tuple[int, ...], gt: tuple[int, ...]) -> DatasetError:
    return DatasetError(f"size mismatch in pair {f.name!r}: input {f.lq} is {lq[0]}x{lq[1]} "
                        f"but target {f.gt} is {gt[0]}x{gt[1]}")
