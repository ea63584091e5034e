"""The embedded default set: natural photos bundled inside scikit-image (no download).

Three splits, disjoint down to the pixel:

- ``test``: three whole photos used for nothing else (fixed crops ``box``: top, left, height,
  width, so that a CPU model evaluates them in seconds; ``chelsea`` is deliberately not a multiple
  of 8 in size, so whole-image testing exercises the pad-and-crop-back path), plus one
  :data:`HELD_OUT` x :data:`HELD_OUT` crop (``<photo>-test``) from the bottom band of every
  training photo.
- ``val``: one more such crop per training photo (``<photo>-val``), beside the test crop in the
  same band; for tuning, never for reported scores.
- ``train``: each training photo without its bottom :data:`HELD_OUT` rows, so that no training
  crop can touch a test or validation pixel.

``cat`` is the same photo as ``chelsea`` and the right view of ``stereo_motorcycle`` nearly
duplicates the left, so neither is used. Only images whose files ship in the scikit-image wheel are
listed (no ``pooch`` fetch). Every source's size is declared and checked on load, so that a changed
scikit-image image cannot silently move a box.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from skimage import data

from ..errors import ConfigError
from .images import to_float_rgb
from .pairs import CleanImage

SPLITS = ("train", "val", "test")
#: side of the held-out test and validation crops, and height of the band they come from (pixels)
HELD_OUT = 128


@dataclass(frozen=True)
class EmbeddedImage:
    """One entry of a split: a crop ``box`` (top, left, height, width) of the bundled photo
    ``source`` (declared ``shape`` H, W), loaded by ``load``."""

    name: str
    load: Callable[[], np.ndarray]
    split: str
    box: tuple[int, int, int, int]
    description: str = ""
    source: str = ""
    shape: tuple[int, int] = (0, 0)


#: (photo, loader, (H, W), description) of the test photos, with their test box
_TEST_PHOTOS = (
    ("camera", data.camera, (512, 512), (40, 150, 256, 256), "photographer with camera (grey)"),
    ("chelsea", data.chelsea, (300, 451), (22, 60, 250, 300), "cat's face, fur and whiskers"),
    ("coffee", data.coffee, (400, 600), (0, 150, 256, 320), "espresso cup on a wooden table"),
)
#: (photo, loader, (H, W), description) of the training photos
_TRAIN_PHOTOS = (
    ("astronaut", data.astronaut, (512, 512), "portrait"),
    ("immunohistochemistry", data.immunohistochemistry, (512, 512), "stained tissue"),
    ("rocket", data.rocket, (427, 640), "rocket launch"),
    ("motorcycle", lambda: data.stereo_motorcycle()[0], (500, 741), "left stereo view"),
    ("hubble_deep_field", data.hubble_deep_field, (872, 1000), "galaxies"),
    ("retina", data.retina, (1411, 1411), "fundus photograph"),
    ("brick", data.brick, (512, 512), "brick wall texture (grey)"),
    ("grass", data.grass, (512, 512), "grass texture (grey)"),
    ("gravel", data.gravel, (512, 512), "gravel texture (grey)"),
    ("coins", data.coins, (303, 384), "coins (grey)"),
    ("moon", data.moon, (512, 512), "lunar surface (grey)"),
)


def _entries() -> tuple[EmbeddedImage, ...]:
    out = [EmbeddedImage(name, load, "test", box, desc, name, shape) for name, load, shape, box, desc in _TEST_PHOTOS]
    for name, load, (height, width), desc in _TRAIN_PHOTOS:
        band = height - HELD_OUT
        out.append(EmbeddedImage(name, load, "train", (0, 0, band, width), f"{desc}, {height}x{width} "
                                 f"without its bottom {HELD_OUT} rows", name, (height, width)))
        for split, centre in (("test", width // 4), ("val", 3 * width // 4)):
            out.append(EmbeddedImage(f"{name}-{split}", load, split, (band, centre - HELD_OUT // 2, HELD_OUT, HELD_OUT),
                                     f"{desc}: held-out crop", name, (height, width)))
    return tuple(out)


EMBEDDED: tuple[EmbeddedImage, ...] = _entries()


def embedded_images(split: str) -> list[EmbeddedImage]:
    """The entries of ``split`` (``"train"``, ``"val"`` or ``"test"``), in a fixed order."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r} of the embedded set; valid: {', '.join(SPLITS)}")
    return [e for e in EMBEDDED if e.split == split]


def load_embedded(split: str) -> list[CleanImage]:
    """The clean images of ``split``: float32, HWC, RGB in [0, 1] (grey repeated to RGB), fresh arrays."""
    return [CleanImage(e.name, to_float_rgb(_pixels(e.name), e.name)) for e in embedded_images(split)]


@cache
def _pixels(name: str) -> np.ndarray:
    """The uint8 pixels of entry ``name``, cropped to its box (cached; callers convert, so copy)."""
    entry = next(e for e in EMBEDDED if e.name == name)
    pixels = entry.load()
    if pixels.shape[:2] != entry.shape:
        raise ConfigError(f"embedded image {entry.source!r} is {pixels.shape[0]}x{pixels.shape[1]}, declared "
                          f"{entry.shape[0]}x{entry.shape[1]}: this scikit-image version ships another photo")
    top, left, height, width = entry.box
    pixels = pixels[top:top + height, left:left + width]
    pixels = np.ascontiguousarray(pixels)
    pixels.flags.writeable = False
    return pixels
