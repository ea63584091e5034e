"""Reading image files into float32, HWC, RGB arrays in [0, 1].

PNG/JPEG/BMP/... are read with Pillow, TIFF with ``tifffile`` (a scikit-image dependency).
8-bit images are divided by 255 and 16-bit ones by 65535; grey becomes RGB by repetition; an alpha
channel is dropped; palette images are expanded. Pillow reads 16-bit *colour* PNGs at 8-bit
precision (16-bit grey PNGs and 16-bit TIFFs keep full precision).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from .pairs import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
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
    """The image at ``path`` as float32, HWC, RGB in [0, 1]; :class:`DatasetError` if unreadable."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            array = tifffile.imread(path)
        else:
            with Image.open(path) as im:
                im.load()
                if im.mode not in _PIL_KEEP:
                    im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
                array = np.asarray(im)
    except (OSError, ValueError, SyntaxError, tifffile.TiffFileError) as e:
        raise DatasetError(f"cannot read image {path}: {e}") from None
    return to_float_rgb(array, str(path))


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of the image at ``path`` from its header (pixels not decoded)."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                return int(page.imagelength), int(page.imagewidth)
        with Image.open(path) as im:
            return im.height, im.width
    except (OSError, ValueError, SyntaxError, tifffile.TiffFileError) as e:
        raise DatasetError(f"cannot read image {path}: {e}") from None
