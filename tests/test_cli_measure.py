"""``skd-bench complexity | throughput | metrics``: records, units in the output, and one clear error
(exit 2) per bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.cli import main
from skd_core.complexity.macs import count_macs
from skd_core.metrics import psnr_ssim
from skd_core.models import build_model


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    return err


def test_complexity_json_record(capsys: pytest.CaptureFixture[str]) -> None:
    (rec,) = run_json(capsys, "complexity", "--models", "student-smoke", "--size", "32", "48", "--cross-check")
    report = count_macs(build_model("student-smoke"), (1, 3, 32, 48))
    assert rec["model"] == "student-smoke" and rec["params"] == 56_073
    assert (rec["macs"], rec["conv_macs"], rec["flops"]) == (report.macs, report.conv_macs, 2 * report.macs)
    assert rec["torch_flops"] == rec["flops"] and rec["input_shape"] == [1, 3, 32, 48]
    assert rec["uncounted_ops"] == {} and rec["counter"].startswith("fvcore")


def test_complexity_table_and_markdown_state_units(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "tables" / "c.md"
    assert main(["complexity", "--models", "student-smoke,teacher-smoke", "--size", "32", "32",
                 "--markdown", str(out)]) == 0
    printed = capsys.readouterr().out
    for text in (printed, out.read_text()):
        assert "1x3x32x32" in text and "FLOPs = 2 x MACs" in text and "counter: fvcore 0.1.5" in text
        assert "conv-only MACs (G)" in text and "teacher-smoke" in text


def test_throughput_reports_speedup_next_to_mac_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    recs = run_json(capsys, "throughput", "--models", "teacher-smoke,student-smoke", "--size", "32", "32",
                    "--batch", "1", "2", "--warmup", "1", "--repeats", "2", "--no-memory")
    assert [(r["model"], r["batch"]) for r in recs] == [
        ("teacher-smoke", 1), ("teacher-smoke", 2), ("student-smoke", 1), ("student-smoke", 2)]
    teacher, student = recs[0], recs[2]
    assert teacher["speedup"] == 1.0 and teacher["mac_ratio"] == 1.0
    assert student["mac_ratio"] == teacher["macs_per_image"] / student["macs_per_image"] > 3
    assert student["speedup"] == pytest.approx(student["images_per_s"] / teacher["images_per_s"])
    for r in recs:
        assert r["device"] == "cpu" and r["dtype"] == "fp32" and r["threads"] == torch.get_num_threads()
        assert r["torch_version"] == torch.__version__ and r["input_shape"][2:] == [32, 32]


def test_throughput_table_says_device_dtype_and_units(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["throughput", "--models", "student-smoke", "--size", "32", "32", "--warmup", "0",
                 "--repeats", "1", "--dtype", "bf16"]) == 0
    out = capsys.readouterr().out
    for text in ("device cpu", "dtype bf16", "threads", "input 32x32", "images/s", "ms/image", "peak MiB",
                 "GMACs/image", "fvcore"):
        assert text in out, text


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    ref = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    noisy = np.clip(ref.astype(int) + rng.integers(-12, 12, ref.shape), 0, 255).astype(np.uint8)
    paths = {name: tmp_path / f"{name}.png" for name in ("ref", "noisy", "small")}
    Image.fromarray(ref).save(paths["ref"])
    Image.fromarray(noisy).save(paths["noisy"])
    Image.fromarray(ref[:16]).save(paths["small"])
    paths["text"] = tmp_path / "readme.txt"
    paths["text"].write_text("hello")
    paths["arrays"] = [noisy, ref]  # type: ignore[assignment]
    return paths


def test_metrics(capsys: pytest.CaptureFixture[str], images: dict) -> None:
    noisy, ref = images["arrays"]
    got = run_json(capsys, "metrics", str(images["noisy"]), str(images["ref"]))
    assert {k: got[k] for k in ("psnr", "ssim")} == psnr_ssim(noisy, ref)
    assert got["psnr_unit"] == "dB" and got["color"] == "rgb"
    got_y = run_json(capsys, "metrics", str(images["noisy"]), str(images["ref"]), "--y", "--crop-border", "2")
    assert {k: got_y[k] for k in ("psnr", "ssim")} == psnr_ssim(noisy, ref, color="y", crop_border=2)


def test_bad_input_one_error_each(capsys: pytest.CaptureFixture[str], images: dict) -> None:
    assert "must have the same size" in fails(capsys, "metrics", str(images["small"]), str(images["ref"]))
    assert "cannot read image" in fails(capsys, "metrics", str(images["text"]), str(images["ref"]))
    assert "did you mean 'student-dckd'" in fails(capsys, "complexity", "--models", "studnt-dckd")
    assert "did you mean 'student-smoke'" in fails(capsys, "throughput", "--models", "student-smok")
    assert "not a multiple of 8" in fails(capsys, "complexity", "--models", "student-smoke", "--size", "30", "32")
    assert "not a multiple of 8" in fails(capsys, "throughput", "--models", "student-smoke", "--size", "32", "36")
    assert "tf32" in fails(capsys, "throughput", "--models", "student-smoke", "--dtype", "tf32")
    if not torch.cuda.is_available():
        assert "cuda" in fails(capsys, "throughput", "--models", "student-smoke", "--device", "cuda")


def test_methods_lists_every_registered_method_with_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    from skd_core.methods import METHODS

    assert main(["methods", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in rows] == list(METHODS.names())
    assert {"scratch", "skd", "fitnet"} <= {r["method"] for r in rows}
    assert main(["methods", "skd", "--json"]) == 0
    options = {r["option"]: r for r in json.loads(capsys.readouterr().out)}
    assert options["mca_dims"]["allowed"].startswith("one of ") and "channel" in options["mca_dims"]["allowed"]
    assert options["sigma"]["allowed"] == "a number > 0 or one of median"
    assert options["alpha1"]["allowed"] == ">= 0" and options["extractor"]["allowed"] == "one of teacher, vgg19"
    declared = {f.name: f.metadata["help"] for f in dataclasses.fields(METHODS.get("skd").options_class)}
    assert {name: r["help"] for name, r in options.items()} == declared and declared["alpha1"]
    assert main(["methods", "no-such-method"]) == 2
    assert "no-such-method" in capsys.readouterr().err


def test_profiles_prints_a_table_unless_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "paper"]) == 0
    table = capsys.readouterr().out
    assert table.split()[:2] == ["setting", "value"] and "student_train.steps" in table
    assert main(["profiles", "paper", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["student_train"]["steps"] > 0


def test_output_into_a_closed_pipe_is_not_an_error() -> None:
    import subprocess
    import sys

    proc = subprocess.run(f"{sys.executable} -m bench profiles paper | head -n 1", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.split() == ["setting", "value"]
    assert "error" not in proc.stderr.lower(), proc.stderr
