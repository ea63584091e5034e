"""Reading image files into float32, HWC, RGB arrays in [0, 1].

PNG/JPEG/BMP/... are read with Pillow, TIFF with ``tifffile`` (a scikit-image dependency).
8-bit images are divided by 255 and 16-bit ones by 65535; grey becomes RGB by repetition; an alpha
channel is dropped; palette images are expanded. Pillow reads 16-bit *colour* PNGs at 8-bit
precision (16-bit grey PNGs and 16-bit TIFFs keep full precision).

Sizes are checked on the header, before any pixel is decoded: an image of more than
:data:`MAX_PIXELS` pixels is refused with a :class:`DatasetError` naming the file (a PNG can claim
100000 x 100000 pixels in a few bytes). Pillow's own decompression-bomb check, at a higher limit, is
replaced by this one while a header is read, so that the message gives the size and our limit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from .pairs import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: the largest image read, in pixels (height x width): 8192 x 8192, 768 MiB as float32 RGB
MAX_PIXELS = 8192 * 8192
_PIL_KEEP = {"1", "L", "RGB", "I", "F", "I;16", "I;16B", "I;16L"}  # others go to RGB(A)


def is_image_file(path: Path) -> bool:
    """A visible file whose suffix is a readable image type (case-insensitive)."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def to_float_rgb(array: np.ndarray, where: str = "image") -> np.ndarray:
    """uint8/uint16/bool array, HW or HWC with 1-4 channels -> float32 HWC RGB in [0, 1]."""
    if array.dtype.kind == "u" and array.dtype.itemsize in (1, 2):
        x = array.astype(np.float32) / (255.0 if array.dtype.itemsize == 1 else 65535.0)
    elif array.dtype == bool:
        x = array.astype(np.float32)
    else:
        raise DatasetError(f"{where}: unsupported pixel type {array.dtype} (expected 8- or 16-bit)")
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.shape[2] not in (1, 2, 3, 4):
        raise DatasetError(f"{where}: unsupported image shape {array.shape} (expected HxW or HxWxC, C<=4)")
    x = x[:, :, :1] if x.shape[2] == 2 else x[:, :, :3]  # drop alpha
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return np.ascontiguousarray(x)


def read_image(path: Path) -> np.ndarray:
    """The image at ``path`` as float32, HWC, RGB in [0, 1]; :class:`DatasetError` if unreadable or
    larger than :data:`MAX_PIXELS`."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            with tifffile.TiffFile(path) as tif:
                _check_pixels(path, _tiff_size(tif))
                array = tif.asarray()
        else:
            with _pil_open(path) as im:
                im.load()
                if im.mode not in _PIL_KEEP:
                    im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
                array = np.asarray(im)
    except (OSError, ValueError, SyntaxError, tifffile.TiffFileError) as e:
        raise DatasetError(f"cannot read image {path}: {e}") from None
    return to_float_rgb(array, str(path))


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of the image at ``path`` from its header (pixels not decoded); a
    :class:`DatasetError` if unreadable or larger than :data:`MAX_PIXELS`."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            with tifffile.TiffFile(path) as tif:
                return _check_pixels(path, _tiff_size(tif))
        with _pil_open(path) as im:
            return im.height, im.width
    except (OSError, ValueError, SyntaxError, tifffile.TiffFileError) as e:
        raise DatasetError(f"cannot read image {path}: {e}") from None


def _tiff_size(tif: tifffile.TiffFile) -> tuple[int, int]:
    page = tif.pages[0]
    return int(page.imagelength), int(page.imagewidth)


def _check_pixels(path: Path, size: tuple[int, int]) -> tuple[int, int]:
    """``size`` (height, width) if it has at most :data:`MAX_PIXELS` pixels, else a :class:`DatasetError`."""
    if size[0] * size[1] > MAX_PIXELS:
        raise DatasetError(f"image {path} is {size[1]}x{size[0]} (WxH) pixels, more than the limit of "
                           f"{MAX_PIXELS:,} (skd_core.data.images.MAX_PIXELS); refusing to decode it")
    return size


@contextlib.contextmanager
def _pil_open(path: Path) -> Iterator[Image.Image]:
    """``Image.open(path)`` with :data:`MAX_PIXELS` checked on the header instead of Pillow's bomb check."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        im = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    with im:
        _check_pixels(path, (im.height, im.width))
        yield im
