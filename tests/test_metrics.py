"""PSNR/SSIM equal a self-written BasicSR formula (float64, 11-tap Gaussian sigma 1.5, population
covariance, valid region) on pairs made here; the full-range-luma and data_range pitfalls differ."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from skimage.metrics import structural_similarity

from skd_core.data import DatasetError
from skd_core.errors import UnknownNameError
from skd_core.metrics import (
    ImageError,
    color_for_task,
    mean_psnr_ssim,
    psnr,
    psnr_ssim,
    quantize,
    read_pair,
    ssim,
)

# --- the BasicSR formulas, written out (basicsr/metrics/psnr_ssim.py, utils/color_util.py) ---


def ref_quantize(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0, 1) * 255.0).astype(np.float64)  # tensor2img + astype(float64)


def ref_y(img255: np.ndarray) -> np.ndarray:
    r, g, b = (img255[..., i] / 255.0 for i in range(3))
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def ref_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10.0 * np.log10(255.0**2 / np.mean((a - b) ** 2))


def ref_ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    window = np.outer(g / g.sum(), g / g.sum())  # cv2.getGaussianKernel(11, 1.5) outer product

    def filt(x: np.ndarray) -> np.ndarray:  # filter2D cropped [5:-5, 5:-5] = valid correlation
        return np.einsum("ijkl,kl->ij", sliding_window_view(x, (11, 11)), window)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = filt(a), filt(b)
    s11, s22, s12 = filt(a * a) - mu1**2, filt(b * b) - mu2**2, filt(a * b) - mu1 * mu2
    return float(np.mean(((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))))


def ref_scores(a: np.ndarray, b: np.ndarray, color: str, crop: int) -> tuple[float, float]:
    a, b = ref_quantize(a), ref_quantize(b)
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    if color == "y":
        a, b = ref_y(a), ref_y(b)
        return ref_psnr(a, b), ref_ssim_channel(a, b)
    return ref_psnr(a, b), float(np.mean([ref_ssim_channel(a[..., c], b[..., c]) for c in range(3)]))


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    """A smooth 40x48 RGB reference in [0, 1] and a noisy restoration that overshoots [0, 1]."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:40, 0:48] / 48.0
    ref = np.stack([0.5 + 0.45 * np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], axis=-1)
    return ref + rng.normal(0, 0.06, ref.shape), ref


@pytest.mark.parametrize("color", ["rgb", "y"])
@pytest.mark.parametrize("crop", [0, 4])
def test_equal_to_basicsr_formula(pair: tuple[np.ndarray, np.ndarray], color: str, crop: int) -> None:
    a, b = pair
    want_psnr, want_ssim = ref_scores(a, b, color, crop)
    assert psnr(a, b, color=color, crop_border=crop) == pytest.approx(want_psnr, abs=1e-6)
    assert ssim(a, b, color=color, crop_border=crop) == pytest.approx(want_ssim, abs=1e-6)


def test_uint8_input_equals_quantised_float(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    a8, b8 = (ref_quantize(x).astype(np.uint8) for x in pair)
    assert psnr_ssim(a8, b8, color="y") == psnr_ssim(a, b, color="y")


def test_pitfalls_give_different_numbers(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    qa, qb = ref_quantize(a), ref_quantize(b)
    ours_y = psnr(a, b, color="y")
    assert ours_y == pytest.approx(ref_psnr(ref_y(qa), ref_y(qb)), abs=1e-6)
    full_range = qa @ [0.299, 0.587, 0.114], qb @ [0.299, 0.587, 0.114]  # full-range luma, wrong for SR papers
    assert abs(ref_psnr(*full_range) - ours_y) > 0.3
    wrong_range = structural_similarity(qa, qb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=1.0, channel_axis=-1)  # 0-255 data scored with range 1
    assert abs(wrong_range - ssim(a, b)) > 0.01
    unquantised = 10 * np.log10(1.0 / np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))  # no uint8 rounding
    assert unquantised != pytest.approx(psnr(a, b), abs=1e-6)


def test_identical_images_and_means(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    assert psnr(b, b) == float("inf") and ssim(b, b) == pytest.approx(1.0)
    mean = mean_psnr_ssim([(a, b), (b * 0.9, b)], color="y")
    assert mean["count"] == 2
    assert mean["psnr"] == pytest.approx((psnr(a, b, color="y") + psnr(b * 0.9, b, color="y")) / 2)
    assert mean["ssim"] == pytest.approx((ssim(a, b, color="y") + ssim(b * 0.9, b, color="y")) / 2)


def test_bad_input_is_one_clear_error(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    with pytest.raises(ImageError, match="differ in size"):
        psnr(a[:32], b)
    with pytest.raises(ImageError, match="float in \\[0, 1\\] or uint8"):
        psnr(a.astype(np.int32), b.astype(np.int32))
    with pytest.raises(ImageError, match="needs H x W x 3"):
        psnr(a[..., 0], b[..., 0], color="y")
    with pytest.raises(ImageError, match="crop_border"):
        ssim(a, b, crop_border=20)
    with pytest.raises(UnknownNameError, match="did you mean 'y'"):
        psnr(a, b, color="Y")
    with pytest.raises(ImageError, match="no image pairs"):
        mean_psnr_ssim([])


def test_task_convention_table() -> None:
    assert [color_for_task(t) for t in ("derain", "deblur", "denoise")] == ["y", "rgb", "rgb"]
    with pytest.raises(UnknownNameError, match="derain"):
        color_for_task("deraining")


def test_read_pair(tmp_path: Path, pair: tuple[np.ndarray, np.ndarray]) -> None:
    rgb = ref_quantize(pair[1]).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb[:32]).save(tmp_path / "small.png")
    (tmp_path / "notes.png").write_text("not an image")

    a, b = read_pair(tmp_path / "rgb.png", tmp_path / "rgba.png")  # alpha dropped
    assert np.array_equal(quantize(a), rgb) and np.array_equal(a, b)
    assert psnr(a, b) == math.inf
    with pytest.raises(DatasetError, match="cannot read image .*notes.png"):
        read_pair(tmp_path / "notes.png", tmp_path / "rgb.png")
    with pytest.raises(DatasetError, match="cannot read image .*missing.png"):
        read_pair(tmp_path / "rgb.png", tmp_path / "missing.png")
    with pytest.raises(ImageError, match="must have the same size"):
        read_pair(tmp_path / "small.png", tmp_path / "rgb.png")
