"""Specs, training crops (seeded, dihedral, aligned) and whole-image padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image
from torch.utils.data import DataLoader

from skd_core.data import (
    FolderImages,
    FolderPairs,
    TrainCrops,
    dihedral,
    load_embedded,
    load_pairs,
    pad_to_multiple,
    parse_spec,
    train_crops,
    unpad,
)
from skd_core.errors import ConfigError


def rgb(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_spec_forms():
    assert parse_spec("embedded").task is None
    assert parse_spec("embedded:derain").task.name == "derain"
    assert parse_spec("folder:/data/Rain100L").path == Path("/data/Rain100L")
    for bad in ("rain100", "folder:", "embeded:denoise25"):
        with pytest.raises(ConfigError, match="not understood"):
            parse_spec(bad)
    with pytest.raises(ConfigError, match="names task 'denoise25' but task 'deblur'"):
        load_pairs("embedded:denoise25", task="deblur")
    with pytest.raises(ConfigError, match="a task is needed"):
        load_pairs("embedded")


def test_crops_are_tensors_of_the_asked_shape():
    crops = train_crops("embedded:denoise25", None, crop=32, length=6, seed=0)
    lq, gt = crops[0]
    assert lq.shape == gt.shape == (3, 32, 32) and lq.dtype == gt.dtype == torch.float32
    assert 0.0 <= gt.min() and gt.max() <= 1.0
    assert len(crops) == 6
    with pytest.raises(IndexError):
        crops[6]


def test_same_seed_same_crops_and_noise_in_any_order():
    a = train_crops("embedded:denoise25", None, crop=24, length=8, seed=7)
    b = train_crops("embedded", "denoise25", crop=24, length=8, seed=7)
    reversed_b = {i: b[i] for i in reversed(range(8))}
    for i in range(8):
        assert all(torch.equal(x, y) for x, y in zip(a[i], reversed_b[i], strict=True))
    other = train_crops("embedded:denoise25", None, crop=24, length=8, seed=8)
    assert not torch.equal(a[0][0], other[0][0])
    assert not torch.equal(a[0][0] - a[0][1], a[1][0] - a[1][1])  # fresh noise per draw


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")  # more workers than CPUs: wanted
def test_dataloader_workers_give_the_same_batches():
    crops = train_crops("embedded:deblur", None, crop=16, length=8, seed=3)
    direct = torch.stack([crops[i][0] for i in range(8)])
    loaded = torch.cat([lq for lq, _ in DataLoader(crops, batch_size=4, num_workers=2)])
    assert torch.equal(direct, loaded)


def test_training_noise_has_the_task_sigma():
    crops = train_crops("embedded:denoise50", None, crop=32, length=16, seed=0)
    residual = torch.cat([(lq - gt).flatten() for lq, gt in crops])
    assert residual.std().item() == pytest.approx(50 / 255, rel=0.02)


@pytest.mark.parametrize("task", ["deblur", "derain"])
def test_blur_and_rain_crops_stay_in_range(task):
    for lq, gt in train_crops(f"embedded:{task}", None, crop=32, length=4, seed=1):
        assert 0.0 <= lq.min() and lq.max() <= 1.0 and not torch.equal(lq, gt)


def test_all_eight_dihedral_transforms_are_distinct_and_invertible():
    x = np.arange(2 * 3 * 1).reshape(2, 3, 1)
    square = np.arange(9).reshape(3, 3, 1)
    outs = {dihedral(square, t).tobytes() for t in range(8)}
    assert len(outs) == 8
    assert dihedral(x, 1).shape == (3, 2, 1)
    for t in range(8):
        back = dihedral(square, t)
        inverse = {1: 3, 3: 1}.get(t, t)  # flips and the half turn are their own inverses
        np.testing.assert_array_equal(dihedral(back, inverse), square)


def test_paired_folder_crops_stay_aligned(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        gt = rng.integers(0, 200, (20, 24, 3), dtype=np.uint8)
        rgb(tmp_path / "target" / f"{name}.png", gt)
        rgb(tmp_path / "input" / f"{name}.png", gt + 50)
    crops = train_crops(f"folder:{tmp_path}", None, crop=8, length=12, seed=0)
    assert isinstance(crops.source, FolderPairs)
    for lq, gt in crops:
        torch.testing.assert_close(lq - gt, torch.full_like(gt, 50 / 255), rtol=0, atol=1e-6)


def test_clean_folder_crops_are_degraded_on_the_fly(tmp_path):
    rgb(tmp_path / "kodim01.png", np.full((20, 20, 3), 128, np.uint8))
    crops = train_crops(f"folder:{tmp_path}", "denoise15", crop=16, length=4, seed=0)
    assert isinstance(crops.source, FolderImages)
    first, second = crops[0], crops[1]
    assert not torch.equal(first[0], second[0])
    with pytest.raises(ConfigError, match="need a task"):
        train_crops(f"folder:{tmp_path}", None, crop=16, length=4, seed=0)


def test_fixed_pairs_in_memory_and_bad_arguments():
    pairs = load_pairs("embedded:derain")
    crops = TrainCrops(pairs, crop=16, length=3, seed=0)
    lq, gt = crops[2]
    assert lq.shape == (3, 16, 16)
    with pytest.raises(ConfigError, match="need crop >= 1"):
        TrainCrops(load_embedded("test"), crop=16, length=3, seed=-1, task="derain")


@pytest.mark.parametrize("shape", [(3, 250, 300), (1, 3, 17, 9), (3, 8, 16), (3, 3, 5)])
def test_pad_to_multiple_reflects_and_crops_back(shape):
    x = torch.rand(shape)
    padded, size = pad_to_multiple(x, 8)
    assert size == shape[-2:]
    assert padded.shape[-2] % 8 == 0 and padded.shape[-1] % 8 == 0
    assert padded.shape[-2] - shape[-2] < 8 and padded.shape[-1] - shape[-1] < 8
    assert torch.equal(unpad(padded, size), x)
    h, w = shape[-2:]
    if padded.shape[-2] - h < h and padded.shape[-1] - w < w:  # one reflection: same as torch
        expected = F.pad(x, (0, padded.shape[-1] - w, 0, padded.shape[-2] - h), mode="reflect")
        assert torch.equal(padded, expected)
    if padded.shape[-2] > h:
        assert torch.equal(padded[..., h, :w], x[..., h - 2, :])  # the edge row is not repeated


def test_pad_refuses_a_single_pixel_row():
    with pytest.raises(ConfigError, match="1x5"):
        pad_to_multiple(torch.rand(3, 1, 5))
