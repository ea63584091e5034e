"""PSNR and SSIM with BasicSR / MATLAB semantics, computed by scikit-image (docs/design.md section 3).

Input images: ``H x W x 3`` **RGB** (channel order R, G, B -- not OpenCV's BGR) or ``H x W``
grey, either float in [0, 1] or ``uint8`` in [0, 255]. Conventions, matching BasicSR
``basicsr/metrics/psnr_ssim.py`` (``calculate_psnr`` / ``calculate_ssim``) on images written by
``tensor2img``:

1. float input is clamped to [0, 1], scaled by 255 and rounded to integers (uint8 quantisation,
   as saving a PNG does); uint8 input is taken as is;
2. computed in float64 with peak value (``data_range``) 255;
3. ``crop_border`` pixels are removed from every side;
4. ``color="y"`` (BasicSR ``test_y_channel=True``): ITU-R BT.601 limited-range luma on the 0-255
   scale, ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for R, G, B in [0, 1] (Y in [16, 235]), not
   rounded (MATLAB's ``rgb2ycbcr`` on uint8 would round it; BasicSR does not). BasicSR evaluates
   this formula in float32, we in float64 (a difference far below the printed precision).
   ``color="rgb"``: all channels as given;
5. PSNR = ``10 log10(255^2 / MSE)`` over all pixels and channels (``inf`` for identical images);
6. SSIM (Wang et al. 2004, MATLAB ``ssim_index``): 11-tap Gaussian window with sigma 1.5, population
   (co)variances, K1 = 0.01, K2 = 0.03, averaged over the valid region (5 pixels from each border
   dropped) and then over channels -- ``skimage.metrics.structural_similarity(gaussian_weights=True,
   sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)``.

Which convention each task's papers use (Restormer's and the SKD paper's tables): see
:data:`TASK_COLOR`. A mean over a test set is the mean of per-image values (as BasicSR and the
MATLAB scripts do), not the PSNR of the mean MSE.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from .errors import SkdError, unknown

COLORS = ("rgb", "y")
#: task -> color space its published PSNR/SSIM are computed in: deraining on Y (Rain100L/H,
#: Test100/1200/2800, Rain1400: the MATLAB scripts of Restormer/MPRNet), deblurring (GoPro, HIDE)
#: and denoising (SIDD, CBSD68, Kodak24, McMaster, Urban100) on RGB
TASK_COLOR = {"derain": "y", "deblur": "rgb", "denoise": "rgb"}
PEAK = 255.0
#: BT.601 limited-range luma weights for R, G, B in [0, 1], and its offset (0-255 scale)
Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0
#: side of SSIM's Gaussian window: smaller images (after ``crop_border``) cannot be scored
SSIM_WINDOW = 11


class ImageError(SkdError, ValueError):
    """An image that cannot be scored: unreadable file, wrong dtype or shape, mismatched sizes."""


def color_for_task(task: str) -> str:
    """The color space (``"rgb"`` or ``"y"``) that ``task``'s published tables use."""
    if task not in TASK_COLOR:
        raise unknown("task", task, TASK_COLOR)
    return TASK_COLOR[task]


def quantize(img: np.ndarray) -> np.ndarray:
    """float [0, 1] -> clamp, x255, round; uint8 -> as is. Returns float64 on the 0-255 scale."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img.astype(np.float64)
    if not np.issubdtype(img.dtype, np.floating):
        raise ImageError(f"images must be float in [0, 1] or uint8, got dtype {img.dtype}")
    return np.round(np.clip(img.astype(np.float64), 0.0, 1.0) * PEAK)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 limited-range luma of an ``H x W x 3`` RGB image on the 0-255 scale -> ``H x W``
    float64 in [16, 235] (BasicSR ``rgb2ycbcr(y_only=True)`` x 255 on RGB order)."""
    if img.ndim != 3 or img.shape[2] != 3:
        raise ImageError(f"color 'y' needs H x W x 3 RGB images, got shape {img.shape}")
    return img @ (np.asarray(Y_WEIGHTS) / PEAK) + Y_OFFSET


def _prepare(a: np.ndarray, b: np.ndarray, color: str, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
    if color not in COLORS:
        raise unknown("color", color, COLORS)
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ImageError(f"images differ in size: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)):
        raise ImageError(f"images must be H x W x 3 (RGB) or H x W (grey), got shape {a.shape}")
    if crop_border < 0 or 2 * crop_border >= min(a.shape[:2]):
        raise ImageError(f"crop_border {crop_border} does not fit images of size {a.shape[0]}x{a.shape[1]}")
    a, b = quantize(a), quantize(b)
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    if color == "y":
        a, b = rgb_to_y(a), rgb_to_y(b)
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, *, color: str = "rgb", crop_border: int = 0) -> float:
    """PSNR in dB of ``a`` against reference ``b`` (BasicSR ``calculate_psnr``; module doc)."""
    a, b = _prepare(a, b, color, crop_border)
    if np.array_equal(a, b):
        return math.inf
    return float(peak_signal_noise_ratio(b, a, data_range=PEAK))


def ssim(a: np.ndarray, b: np.ndarray, *, color: str = "rgb", crop_border: int = 0) -> float:
    """SSIM in [-1, 1] of ``a`` against ``b`` (BasicSR ``calculate_ssim``; module doc). Images
    smaller than 11 x 11 after cropping cannot be scored."""
    a, b = _prepare(a, b, color, crop_border)
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ImageError(f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after cropping, "
                         f"got {a.shape[0]}x{a.shape[1]}")
    return float(structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=PEAK,
        channel_axis=-1 if a.ndim == 3 else None,
    ))


def psnr_ssim(a: np.ndarray, b: np.ndarray, *, color: str = "rgb", crop_border: int = 0) -> dict[str, float]:
    """``{"psnr": dB, "ssim": ...}`` of one image pair."""
    return {"psnr": psnr(a, b, color=color, crop_border=crop_border),
            "ssim": ssim(a, b, color=color, crop_border=crop_border)}


def mean_psnr_ssim(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], *, color: str = "rgb", crop_border: int = 0
) -> dict[str, float]:
    """Mean of per-image PSNR (dB) and SSIM over ``(restored, reference)`` pairs, with ``count``."""
    scores = [psnr_ssim(a, b, color=color, crop_border=crop_border) for a, b in pairs]
    if not scores:
        raise ImageError("no image pairs to score")
    return {"psnr": float(np.mean([s["psnr"] for s in scores])),
            "ssim": float(np.mean([s["ssim"] for s in scores])), "count": len(scores)}


def read_pair(restored: str | Path, reference: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read two image files (float32 HWC RGB in [0, 1], see :func:`skd_core.data.read_image`) that
    must have the same size; an unreadable file raises a ``DatasetError`` naming it."""
    from .data.images import read_image  # here: scoring arrays needs no image reading

    a, b = read_image(Path(restored)), read_image(Path(reference))
    if a.shape != b.shape:
        raise ImageError(f"{restored} is {_size(a)} but {reference} is {_size(b)}: images must have the same size")
    return a, b


def _size(img: np.ndarray) -> str:
    return f"{img.shape[1]}x{img.shape[0]} (WxH) with {img.shape[2] if img.ndim == 3 else 1} channel(s)"
