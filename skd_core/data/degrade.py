"""Synthetic degradations, deterministic given a random generator.

Every degradation maps a clean float32 HWC RGB image in [0, 1] to a degraded float32 HWC RGB image
of the same shape. Kinds (registered in :data:`DEGRADATIONS`, selected by a task's ``kind``):

- ``noise``: ``x + N(0, (sigma/255)^2)`` i.i.d. per pixel and channel, computed in float64, not
  clipped (the official Restormer Gaussian-denoising test recipe).
- ``blur``: motion blur by a kernel that is either a straight anti-aliased segment or a random
  trajectory (a random walk with inertia, in the spirit of Boracchi & Foi 2012), length drawn in
  ``[max_length/3, max_length]`` px, normalised to sum 1, applied per channel with mirror padding
  (whole-sample reflection, like ``torch.nn.functional.pad(mode="reflect")``).
- ``rain``: rendered streaks: sparse random drops smeared along one direction (vertical tilted by
  up to ``max_tilt`` degrees), slightly Gaussian-blurred, then screen-blended
  ``1 - (1 - x) * (1 - s)`` so the result stays in [0, 1].

Seeding: :func:`image_rng` gives the generator for the one fixed degradation of a test image;
training crops use ``numpy.random.default_rng([seed, index])`` (see :mod:`.datasets`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from ..registry import Registry
from .tasks import TaskInfo, get_task

# Bump when a degradation's code changes what it produces: it is part of the data fingerprint.
RECIPE_VERSION = 1

Rng = np.random.Generator | np.random.RandomState
DEGRADATIONS: Registry[Callable[..., np.ndarray]] = Registry("degradation kind")


def degrade(image: np.ndarray, task: str | TaskInfo, rng: Rng) -> np.ndarray:
    """Apply ``task``'s degradation to ``image`` (float32 HWC RGB [0, 1]) drawing from ``rng``."""
    info = get_task(task)
    return DEGRADATIONS.get(info.kind)(image, rng, **info.params)


def image_rng(task: str | TaskInfo, name: str) -> Rng:
    """The generator for the fixed degradation of test image ``name``.

    Noise: ``numpy.random.RandomState(0)`` for every image, exactly as the official Restormer
    script ``test_gaussian_color_denoising.py`` re-seeds before each image, so that clean folder sets
    (CBSD68, Kodak24, ...) are degraded as in the published numbers. Blur and rain: a generator
    seeded from ``"<task>/<name>"``, so each image gets its own kernel or streaks.
    """
    info = get_task(task)
    if info.kind == "noise":
        return np.random.RandomState(0)
    return np.random.default_rng(name_seed(f"{info.name}/{name}"))


def name_seed(text: str) -> int:
    """A stable 64-bit seed from text (SHA-256; unlike ``hash()`` it does not change per process)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def line_kernel(length: float, angle_deg: float, size: int) -> np.ndarray:
    """A straight segment of ``length`` px through the centre of a ``size`` x ``size`` float64
    kernel, at ``angle_deg`` counter-clockwise from the +x (column) axis, anti-aliased; sums to 1."""
    t = np.linspace(-length / 2, length / 2, max(2, int(np.ceil(4 * length))))
    angle = np.deg2rad(angle_deg)
    return _splat(-t * np.sin(angle), t * np.cos(angle), size)


def trajectory_kernel(rng: Rng, length: float, size: int, steps: int = 64) -> np.ndarray:
    """A random camera-shake path (random walk whose heading turns by N(0, 0.35 rad) per step),
    scaled so that no point is farther than ``length / 2`` px from its centroid; float64, sums to 1."""
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0.0, 0.35, steps))
    path = np.cumsum(np.stack([np.sin(heading), np.cos(heading)], axis=1), axis=0)
    path -= path.mean(axis=0)
    path *= (length / 2) / max(np.linalg.norm(path, axis=1).max(), 1e-9)
    fine = np.linspace(0, steps - 1, 8 * steps)  # densify so the splat has no gaps
    rows = np.interp(fine, np.arange(steps), path[:, 0])
    cols = np.interp(fine, np.arange(steps), path[:, 1])
    return _splat(rows, cols, size)


def _splat(rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Bilinearly splat points (offsets from the kernel centre) into a ``size`` x ``size`` kernel."""
    centre = (size - 1) / 2
    rows, cols = np.clip(rows + centre, 0, size - 1), np.clip(cols + centre, 0, size - 1)
    r0, c0 = np.minimum(np.floor(rows).astype(int), size - 2), np.minimum(np.floor(cols).astype(int), size - 2)
    fr, fc = rows - r0, cols - c0
    kernel = np.zeros((size, size))
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            np.add.at(kernel, (r0 + dr, c0 + dc), wr * wc)
    return kernel / kernel.sum()


@DEGRADATIONS.register("noise")
def add_gaussian_noise(image: np.ndarray, rng: Rng, sigma: float) -> np.ndarray:
    """``image + N(0, (sigma/255)^2)``, float32, not clipped (values may leave [0, 1])."""
    return (image.astype(np.float64) + rng.normal(0.0, sigma / 255.0, image.shape)).astype(np.float32)


@DEGRADATIONS.register("blur")
def motion_blur(image: np.ndarray, rng: Rng, kernel_size: int, max_length: float, line_prob: float) -> np.ndarray:
    """Convolve each channel with a random line (probability ``line_prob``) or trajectory kernel."""
    length = rng.uniform(max_length / 3, max_length)
    if rng.uniform() < line_prob:
        kernel = line_kernel(length, rng.uniform(0.0, 180.0), kernel_size)
    else:
        kernel = trajectory_kernel(rng, length, kernel_size)
    return blur(image, kernel)


def blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel of float32 HWC ``image`` with 2-D ``kernel``, mirror padding; float32."""
    return ndimage.convolve(image, kernel[:, :, None].astype(np.float32), mode="mirror")


@DEGRADATIONS.register("rain")
def add_rain(image: np.ndarray, rng: Rng, density: float, min_length: float, max_length: float,
             max_tilt: float, strength: float) -> np.ndarray:
    """Screen-blend rendered streaks onto ``image``; result float32 in [0, 1] if ``image`` is.

    ``density``: fraction of pixels that start a drop; streak length in [min_length, max_length] px;
    tilt from vertical in [-max_tilt, max_tilt] degrees; ``strength``: peak streak brightness.
    """
    height, width = image.shape[:2]
    drops = (rng.uniform(size=(height, width)) < density) * rng.uniform(0.4, 1.0, (height, width))
    length = rng.uniform(min_length, max_length)
    size = 2 * int(np.ceil(length / 2)) + 3
    kernel = line_kernel(length, 90.0 + rng.uniform(-max_tilt, max_tilt), size) * length  # ~1 per px
    streaks = ndimage.gaussian_filter(ndimage.convolve(drops, kernel, mode="mirror"), 0.6)
    streaks = np.clip(streaks * strength, 0.0, 1.0).astype(np.float32)[:, :, None]
    return (1.0 - (1.0 - image) * (1.0 - streaks)).astype(np.float32)
