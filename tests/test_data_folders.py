"""Real benchmark folders: each layout preset pairs by name; bad data gives one clear error each."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from skd_core.data import (
    DatasetError,
    data_fingerprint,
    detect_layout,
    get_task,
    image_rng,
    load_pairs,
    read_image,
    train_crops,
)
from skd_core.data.degrade import degrade
from skd_core.errors import ConfigError, UnknownNameError

SIZE = (12, 16)


def png(path: Path, value: int, size: tuple[int, int] = SIZE) -> Path:
    """A flat grey 8-bit image of ``value`` (so a pair's content says which files were paired)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, np.uint8)).save(path)
    return path


def pair(root: Path, lq: str, gt: str, value: int) -> None:
    """Target of grey ``value`` and input of ``value + 100`` (the input tells which target it wants)."""
    png(root / gt, value)
    png(root / lq, value + 100)


def values(pairs) -> dict[str, tuple[int, int]]:
    """name -> (input grey, target grey): a correct pairing has input == target + 100."""
    return {p.name: (round(float(p.lq.mean()) * 255), round(float(p.gt.mean()) * 255)) for p in pairs}


def check(pairs, expected: dict[str, int]) -> None:
    assert values(pairs) == {name: (v + 100, v) for name, v in expected.items()}


def test_restormer_layout_pairs_by_name_not_order(tmp_path):
    pair(tmp_path, "input/10.png", "target/10.bmp", 10)  # extensions may differ: pairing is by stem
    pair(tmp_path, "input/9.png", "target/9.png", 9)
    pair(tmp_path, "input/b.png", "target/b.png", 11)
    assert detect_layout(tmp_path).name == "restormer"
    pairs = load_pairs(f"folder:{tmp_path}")
    check(pairs, {"10": 10, "9": 9, "b": 11})
    assert pairs[0].lq_path == tmp_path / "input/10.png" and pairs[0].gt_path == tmp_path / "target/10.bmp"
    assert pairs[0].lq.dtype == np.float32 and pairs[0].lq.shape == (*SIZE, 3)


@pytest.mark.parametrize("folders", [("input", "target"), ("rainy_image", "ground_truth")])
def test_rain13k_layout_maps_rain1400_versions_to_one_clean_image(tmp_path, folders):
    inp, tgt = folders
    png(tmp_path / tgt / "1.png", 1)
    png(tmp_path / tgt / "2.png", 2)
    png(tmp_path / tgt / "3_1.png", 3)  # an exact name wins over the N_k -> N rule
    for k, v in [("1_1", 1), ("1_2", 1), ("1_14", 1), ("2_1", 2), ("3_1", 3)]:
        png(tmp_path / inp / f"{k}.png", v + 100)
    check(load_pairs(f"folder:{tmp_path}", layout="rain13k"),
          {"1_1": 1, "1_2": 1, "1_14": 1, "2_1": 2, "3_1": 3})


def test_rain100_rainy_folder_beside_norain_files(tmp_path):
    for i in (1, 2, 10):
        pair(tmp_path, f"rainy/rain-{i:03d}.png", f"norain-{i:03d}.png", i)
    assert detect_layout(tmp_path).name == "rain100"
    check(load_pairs(f"folder:{tmp_path}"), {"rain-001": 1, "rain-002": 2, "rain-010": 10})


def test_rain100_rain_and_norain_in_one_folder(tmp_path):
    for i in (1, 2):
        pair(tmp_path, f"rain-{i:03d}.png", f"norain-{i:03d}.png", i)
    check(load_pairs(f"folder:{tmp_path}", layout="rain100"), {"rain-001": 1, "rain-002": 2})


def test_rain100_x2_naming_where_sorted_order_would_mispair(tmp_path):
    for i in (1, 2, 10):  # sorted: norain-10x2 < norain-1x2 but norain-1 < norain-10
        pair(tmp_path, f"rain/norain-{i}x2.png", f"norain/norain-{i}.png", i)
    check(load_pairs(f"folder:{tmp_path}"), {"norain-1x2": 1, "norain-2x2": 2, "norain-10x2": 10})


def test_gopro_sequences_get_prefixed_unique_names(tmp_path):
    for seq, v in [("GOPR0384_11_00", 1), ("GOPR0385_11_01", 2)]:
        pair(tmp_path, f"{seq}/blur/000001.png", f"{seq}/sharp/000001.png", v)
        pair(tmp_path, f"{seq}/blur/000002.png", f"{seq}/sharp/000002.png", v + 10)
        png(tmp_path / seq / "blur_gamma" / "000001.png", 250)  # ignored
    assert detect_layout(tmp_path).name == "gopro"
    check(load_pairs(f"folder:{tmp_path}"), {
        "GOPR0384_11_00_000001": 1, "GOPR0384_11_00_000002": 11,
        "GOPR0385_11_01_000001": 2, "GOPR0385_11_01_000002": 12})


def test_sidd_pairs_noisy_with_gt_in_each_scene(tmp_path):
    for scene, v in [("0001_001_S6_00100_00060_3200_L", 1), ("0002_001_S6_00100_00020_3200_N", 2)]:
        prefix = scene[:4]
        pair(tmp_path / "Data" / scene, f"{prefix}_NOISY_SRGB_010.PNG", f"{prefix}_GT_SRGB_010.PNG", v)
        pair(tmp_path / "Data" / scene, f"{prefix}_NOISY_SRGB_011.PNG", f"{prefix}_GT_SRGB_011.PNG", v + 10)
        (tmp_path / "Data" / scene / f"{prefix}_NOISY_RAW_010.MAT").write_bytes(b"raw")  # ignored
    pairs = load_pairs(f"folder:{tmp_path}", layout="sidd")
    a, b = "Data_0001_001_S6_00100_00060_3200_L_0001_SRGB", "Data_0002_001_S6_00100_00020_3200_N_0002_SRGB"
    check(pairs, {f"{a}_010": 1, f"{a}_011": 11, f"{b}_010": 2, f"{b}_011": 12})
    assert detect_layout(tmp_path / "Data").name == "sidd"


def test_clean_folder_is_degraded_by_the_task(tmp_path):
    for name, v in [("kodim01", 40), ("kodim02", 80)]:
        png(tmp_path / f"{name}.png", v)
    assert detect_layout(tmp_path).name == "clean"
    pairs = load_pairs(f"folder:{tmp_path}", task="denoise25")
    assert [p.name for p in pairs] == ["kodim01", "kodim02"]
    for p in pairs:
        np.testing.assert_array_equal(p.lq, degrade(p.gt, "denoise25", image_rng("denoise25", p.name)))
        assert p.lq_path is None and p.gt_path == tmp_path / f"{p.name}.png"
    again = load_pairs(f"folder:{tmp_path}", task=get_task("denoise25"))
    np.testing.assert_array_equal(pairs[1].lq, again[1].lq)
    with pytest.raises(ConfigError, match="a task is needed"):
        load_pairs(f"folder:{tmp_path}")


def test_read_image_handles_bit_depths_grey_and_alpha(tmp_path):
    grey16 = np.array([[0, 65535], [32768, 1000]], np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    x = read_image(tmp_path / "g16.png")
    assert x.shape == (2, 2, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[..., 1], grey16 / 65535, rtol=1e-6)
    rgb16 = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3) * 3000
    tifffile.imwrite(tmp_path / "c16.tif", rgb16)
    np.testing.assert_allclose(read_image(tmp_path / "c16.tif"), rgb16 / 65535, rtol=1e-6)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 7
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png")[0, 0], [1.0, 0.0, 0.0])
    Image.fromarray(np.full((2, 2), 51, np.uint8)).convert("P").save(tmp_path / "p.png")
    np.testing.assert_allclose(read_image(tmp_path / "p.png"), 0.2, atol=1e-6)


# --- errors: one each, naming the file ---------------------------------------------------------
def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match=f"dataset folder not found: {tmp_path / 'nope'}"):
        load_pairs(f"folder:{tmp_path / 'nope'}")
    pair(tmp_path, "input/a.png", "target/a.png", 1)
    shutil.rmtree(tmp_path / "target")
    with pytest.raises(DatasetError, match=f"folder not found: {tmp_path / 'target'}"):
        load_pairs(f"folder:{tmp_path}", layout="restormer")
    pair(tmp_path, "GOPR0001/blur/1.png", "GOPR0001/sharp/1.png", 1)
    shutil.rmtree(tmp_path / "GOPR0001" / "sharp")
    with pytest.raises(DatasetError, match=f"folder not found: {tmp_path / 'GOPR0001' / 'sharp'}"):
        load_pairs(f"folder:{tmp_path}", layout="gopro")


def test_unpaired_input_and_unpaired_target(tmp_path):
    pair(tmp_path, "input/a.png", "target/a.png", 1)
    png(tmp_path / "input" / "b.png", 2)
    with pytest.raises(DatasetError, match=f"unpaired file {tmp_path / 'input' / 'b.png'}: no target named b"):
        load_pairs(f"folder:{tmp_path}")
    (tmp_path / "input" / "b.png").unlink()
    png(tmp_path / "target" / "c.png", 3)
    with pytest.raises(DatasetError, match=f"unpaired file {tmp_path / 'target' / 'c.png'}"):
        load_pairs(f"folder:{tmp_path}")


def test_two_files_with_one_name(tmp_path):
    pair(tmp_path, "input/a.png", "target/a.png", 1)
    png(tmp_path / "input" / "a.bmp", 1)
    with pytest.raises(DatasetError, match="two images share the name 'a'"):
        load_pairs(f"folder:{tmp_path}")


def test_corrupt_image(tmp_path):
    pair(tmp_path, "input/a.png", "target/a.png", 1)
    (tmp_path / "target" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    png(tmp_path / "input" / "b.png", 2)
    with pytest.raises(DatasetError, match=f"cannot read image {tmp_path / 'target' / 'b.png'}"):
        load_pairs(f"folder:{tmp_path}")


def test_truncated_image_fails_when_read(tmp_path):
    pair(tmp_path, "input/a.png", "target/a.png", 1)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(tmp_path / "input/a.png")
    png(tmp_path / "target/a.png", 1, (64, 64))
    data = (tmp_path / "input" / "a.png").read_bytes()
    (tmp_path / "input" / "a.png").write_bytes(data[: len(data) // 2])
    pairs = load_pairs(f"folder:{tmp_path}")  # the header is intact
    with pytest.raises(DatasetError, match=f"cannot read image {tmp_path / 'input' / 'a.png'}"):
        pairs[0]


def test_pair_of_different_sizes(tmp_path):
    png(tmp_path / "input" / "a.png", 1, (12, 16))
    png(tmp_path / "target" / "a.png", 1, (12, 14))
    with pytest.raises(DatasetError, match=(f"size mismatch in pair 'a': input {tmp_path / 'input' / 'a.png'} is "
                                            f"12x16 but target {tmp_path / 'target' / 'a.png'} is 12x14")):
        load_pairs(f"folder:{tmp_path}")


def test_image_smaller_than_the_crop(tmp_path):
    pair(tmp_path, "input/a.png", "target/a.png", 1)
    png(tmp_path / "input" / "small.png", 1, (12, 7))
    png(tmp_path / "target" / "small.png", 1, (12, 7))
    small = tmp_path / "target" / "small.png"
    with pytest.raises(DatasetError, match=f"image {small} is 12x7, smaller than the crop 8x8"):
        train_crops(f"folder:{tmp_path}", None, crop=8, length=4, seed=0)


def test_unknown_layout_and_undetectable_folder(tmp_path):
    pair(tmp_path, "input/a.png", "target/a.png", 1)
    with pytest.raises(UnknownNameError, match="did you mean 'restormer'"):
        load_pairs(f"folder:{tmp_path}", layout="restomer")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="cannot tell the layout"):
        load_pairs(f"folder:{tmp_path / 'empty'}")


def test_folder_fingerprint_follows_content_not_location(tmp_path):
    pair(tmp_path / "a", "input/x.png", "target/x.png", 1)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    fp = data_fingerprint(f"folder:{tmp_path / 'a'}")
    assert fp == data_fingerprint(f"folder:{tmp_path / 'b'}")
    png(tmp_path / "b" / "target" / "x.png", 2)
    assert fp != data_fingerprint(f"folder:{tmp_path / 'b'}")
