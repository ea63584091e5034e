"""The embedded default set: offline scikit-image photos, disjoint splits, deterministic degradations."""

from __future__ import annotations

import numpy as np
import pytest

from skd_core.data import (
    EMBEDDED,
    data_fingerprint,
    embedded_images,
    get_task,
    line_kernel,
    list_tasks,
    load_embedded,
    load_pairs,
    to_float_rgb,
    trajectory_kernel,
)
from skd_core.errors import ConfigError, UnknownNameError


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def test_train_and_test_are_disjoint_photos():
    train = {e.source for e in embedded_images("train")}
    test = {e.name for e in embedded_images("test")}
    assert {"camera", "chelsea", "coffee"} <= test and len(test) == 3 + len(train)
    assert {e.name for e in embedded_images("val")} == {f"{name}-val" for name in train}
    assert not train & test and len(train) >= 8
    assert len({e.name for e in EMBEDDED}) == len(EMBEDDED)
    assert "cat" not in train | test  # the same photo as chelsea


def test_held_out_crops_never_touch_a_training_pixel():
    """Pixel-exact on the source photos: each split's arrays are exactly their boxes of the source,
    and no source pixel is in the training box and in a test or validation box."""
    by_source: dict[str, list] = {}
    for entry in EMBEDDED:
        by_source.setdefault(entry.source, []).append(entry)
    arrays = {split: {c.name: c.image for c in load_embedded(split)} for split in ("train", "val", "test")}
    for source, entries in by_source.items():
        photo = to_float_rgb(entries[0].load(), source)
        owner = np.full(photo.shape[:2], "", dtype=object)
        for entry in entries:
            top, left, height, width = entry.box
            window = (slice(top, top + height), slice(left, left + width))
            np.testing.assert_array_equal(arrays[entry.split][entry.name], photo[window])
            assert not owner[window].astype(bool).any(), f"{entry.name} overlaps {set(owner[window].flat) - {''}}"
            owner[window] = entry.name
        if any(e.split == "train" for e in entries):
            assert {e.split for e in entries} == {"train", "val", "test"}


def test_embedded_images_are_float_rgb_and_modest():
    for image in load_embedded("test"):
        assert image.image.dtype == np.float32 and image.image.ndim == 3 and image.image.shape[2] == 3
        assert 0.0 <= image.image.min() and image.image.max() <= 1.0
        assert image.image.shape[0] * image.image.shape[1] <= 256 * 320
    shapes = {i.name: i.image.shape for i in load_embedded("test")}
    assert shapes["chelsea"] == (250, 300, 3)  # not a multiple of 8: exercises whole-image padding
    camera = next(i for i in load_embedded("test") if i.name == "camera").image
    assert np.array_equal(camera[..., 0], camera[..., 2])  # grey repeated to RGB


def test_unknown_split_is_a_config_error():
    with pytest.raises(ConfigError, match="valid: train, val, test"):
        load_embedded("validation")


@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_noise_follows_the_published_recipe(sigma):
    pairs = load_pairs(f"embedded:denoise{sigma}")
    for pair in pairs:
        expected = (pair.gt.astype(np.float64) + np.random.RandomState(0).normal(0, sigma / 255, pair.gt.shape))
        np.testing.assert_array_equal(pair.lq, expected.astype(np.float32))
        residual = pair.lq.astype(np.float64) - pair.gt
        assert residual.std() == pytest.approx(sigma / 255, rel=0.01)
        assert abs(residual.mean()) < 0.05 * sigma / 255
    assert any(p.lq.min() < 0.0 or p.lq.max() > 1.0 for p in pairs)  # not clipped
    assert np.mean([psnr(p.lq, p.gt) for p in pairs]) == pytest.approx(20 * np.log10(255 / sigma), abs=0.05)


def test_denoise25_input_psnr_is_about_20_2_db():
    assert np.mean([psnr(p.lq, p.gt) for p in load_pairs("embedded", "denoise25")]) == pytest.approx(20.17, abs=0.05)


@pytest.mark.parametrize("task,low,high", [("deblur", 26.0, 36.0), ("derain", 20.0, 30.0)])
def test_blur_and_rain_inputs_are_plausibly_degraded(task, low, high):
    pairs = load_pairs("embedded", task)
    for pair in pairs:  # flat held-out crops (dark sky, the moon's plain) are barely changed by blur
        assert pair.lq.shape == pair.gt.shape and pair.lq.dtype == np.float32
        assert 0.0 <= pair.lq.min() and pair.lq.max() <= 1.0
        assert 15.0 < psnr(pair.lq, pair.gt) < 55.0
    assert low < np.mean([psnr(p.lq, p.gt) for p in pairs]) < high
    assert get_task(task).color_space == ("y" if task == "derain" else "rgb")


@pytest.mark.parametrize("task", [t.name for t in list_tasks()])
def test_test_degradation_is_fixed_per_image(task):
    first, second = load_pairs("embedded", task), load_pairs("embedded", task)
    for a, b in zip(first, second, strict=True):
        assert a.name == b.name
        np.testing.assert_array_equal(a.lq, b.lq)


def test_train_split_loads_and_streaks_differ_between_images():
    blurred = {p.name: p for p in load_pairs("embedded", "deblur", split="train")}
    assert set(blurred) == {e.name for e in embedded_images("train")}
    a, b = load_pairs("embedded", "derain")[:2]
    h, w = min(a.lq.shape[0], b.lq.shape[0]), min(a.lq.shape[1], b.lq.shape[1])
    assert not np.allclose(a.lq[:h, :w] - a.gt[:h, :w], b.lq[:h, :w] - b.gt[:h, :w])


def test_kernels_are_normalised_and_centred():
    horizontal = line_kernel(9.0, 0.0, 15)
    assert horizontal.sum() == pytest.approx(1.0) and horizontal.min() >= 0
    assert horizontal[7].sum() == pytest.approx(1.0)  # all mass on the centre row
    vertical = line_kernel(9.0, 90.0, 15)
    np.testing.assert_allclose(vertical, horizontal.T, atol=1e-12)
    path = trajectory_kernel(np.random.default_rng(3), 15.0, 21)
    assert path.sum() == pytest.approx(1.0) and path.shape == (21, 21)
    assert path[0].sum() == path[-1].sum() == path[:, 0].sum() == path[:, -1].sum() == 0  # fits


def test_unknown_task_names_the_closest_first():
    with pytest.raises(UnknownNameError, match="did you mean 'denoise25'"):
        load_pairs("embedded:denoise26")


def test_fingerprint_identifies_task_and_split():
    fp = data_fingerprint("embedded:denoise25")
    assert len(fp) == 16 and fp == data_fingerprint("embedded", "denoise25")
    assert fp != data_fingerprint("embedded:denoise50")
    assert fp != data_fingerprint("embedded:denoise25", split="train")
