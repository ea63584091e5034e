"""The embedded default set: natural photos bundled inside scikit-image (no download).

Disjoint by image (never two crops of one photo on both sides): the test images are never used for
training. ``cat`` is the same photo as ``chelsea`` and the right view of ``stereo_motorcycle``
nearly duplicates the left, so neither is used. Test images are fixed crops (``box``: top, left,
height, width) so that a CPU model evaluates them in seconds; one is deliberately not a multiple of
8 in size, so whole-image testing exercises the pad-and-crop-back path. Training images are whole.
Only images whose files ship in the scikit-image wheel are listed (no ``pooch`` fetch).
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

SPLITS = ("train", "test")


@dataclass(frozen=True)
class EmbeddedImage:
    """One bundled image: its loader, its split and an optional crop box (top, left, height, width)."""

    name: str
    load: Callable[[], np.ndarray]
    split: str
    box: tuple[int, int, int, int] | None = None
    description: str = ""


EMBEDDED: tuple[EmbeddedImage, ...] = (
    EmbeddedImage("camera", data.camera, "test", (40, 150, 256, 256), "photographer with camera (grey)"),
    EmbeddedImage("chelsea", data.chelsea, "test", (22, 60, 250, 300), "cat's face, fur and whiskers"),
    EmbeddedImage("coffee", data.coffee, "test", (0, 150, 256, 320), "espresso cup on a wooden table"),
    EmbeddedImage("astronaut", data.astronaut, "train", None, "portrait, 512x512"),
    EmbeddedImage("immunohistochemistry", data.immunohistochemistry, "train", None, "stained tissue, 512x512"),
    EmbeddedImage("rocket", data.rocket, "train", None, "rocket launch, 427x640"),
    EmbeddedImage("motorcycle", lambda: data.stereo_motorcycle()[0], "train", None, "left stereo view, 500x741"),
    EmbeddedImage("hubble_deep_field", data.hubble_deep_field, "train", None, "galaxies, 872x1000"),
    EmbeddedImage("retina", data.retina, "train", None, "fundus photograph, 1411x1411"),
    EmbeddedImage("brick", data.brick, "train", None, "brick wall texture (grey), 512x512"),
    EmbeddedImage("grass", data.grass, "train", None, "grass texture (grey), 512x512"),
    EmbeddedImage("gravel", data.gravel, "train", None, "gravel texture (grey), 512x512"),
    EmbeddedImage("coins", data.coins, "train", None, "coins (grey), 303x384"),
    EmbeddedImage("moon", data.moon, "train", None, "lunar surface (grey), 512x512"),
)


def embedded_images(split: str) -> list[EmbeddedImage]:
    """The entries of ``split`` (``"train"`` or ``"test"``), in a fixed order."""
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
    if entry.box is not None:
        top, left, height, width = entry.box
        pixels = pixels[top:top + height, left:left + width]
    pixels = np.ascontiguousarray(pixels)
    pixels.flags.writeable = False
    return pixels
