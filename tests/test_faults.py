"""The catalog of faults and bad input: one case per fault, each running ``skd-bench`` in-process.

Every :class:`Case` must end with the expected exit status (2 for a user error, 1 for an internal
error, 130 for Ctrl-C) and ONE line on stderr that contains every ``expect`` string (so it names the
file, key or flag) and none of ``refuse``; a runs folder with finished records (``{runs}``, made once
per module by running ``{grid}``) must keep every finished record byte for byte, and, unless the
case ``writes``, gain no file at all. To add a fault, append a :class:`Case` to :data:`CASES`.

Faults that a single command cannot show have their own tests after the table.
"""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from bench.cli import main
from bench.store.locks import LEASE_SECONDS, process_start
from skd_core.models import build_model
from skd_core.train.checkpoint import save_weights

#: a grid of one finished cell (the smoke scratch student), run once per module into ``{runs}``
GRID = "study: faults\nprofile: smoke\ntasks: [denoise25]\nseeds: [0]\ncells: [{label: scratch, method: scratch}]\n"
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@dataclass(frozen=True)
class Case:
    """One fault. ``argv`` is split like a shell line after ``setup(tmp)`` made its files;
    ``{tmp}`` (the case's folder), ``{runs}`` and ``{grid}`` are replaced in it and in ``expect``.
    ``patch(monkeypatch)`` may replace a function first (to raise what a test cannot cause)."""

    name: str
    argv: str
    expect: tuple[str, ...]
    code: int = 2
    setup: Callable[[Path], None] | None = None
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    refuse: tuple[str, ...] = ()
    writes: bool = False  # may add files to {runs}; its finished records must still be unchanged
    marks: tuple[pytest.MarkDecorator, ...] = ()


# --- setups: the files a case needs under its tmp folder -----------------------------------------

def write(relative: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return setup


def png(relative: str, height: int, width: int) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(path)
    return setup


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` RGB pixels, with almost no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def tiff_header(width: int, height: int) -> bytes:
    """A little-endian TIFF whose one strip claims ``width`` x ``height`` grey pixels."""
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
            (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 1)]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *t) for t in tags) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd


def student(tmp: Path) -> None:
    """``{tmp}/student.safetensors``: freshly initialised student-smoke weights."""
    save_weights(build_model("student-smoke"), tmp / "student.safetensors")


def torch_file(relative: str, make: Callable[[], object], keep: float = 1.0) -> Callable[[Path], None]:
    """``torch.save(make())`` at ``relative``, cut to the first ``keep`` fraction of its bytes."""
    def setup(tmp: Path) -> None:
        path = tmp / relative
        torch.save(make(), path)
        data = path.read_bytes()
        path.write_bytes(data[:int(len(data) * keep)])
    return setup


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        for s in setups:
            s(tmp)
    return setup


def raises(target: str, exc: BaseException) -> Callable[[pytest.MonkeyPatch], None]:
    """A patch replacing ``target`` (``module.attribute``) with a function that raises ``exc``."""
    def fail(*args: object, **kwargs: object) -> None:
        raise exc
    return lambda mp: mp.setattr(target, fail)


def denied(target: str) -> Callable[[pytest.MonkeyPatch], None]:
    """A patch making ``target(path, ...)`` fail as writing into a read-only folder does (as root,
    which may write anywhere, a real read-only folder would not fail)."""
    def fail(path: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    return lambda mp: mp.setattr(target, fail)


def unwritable_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    """No file can be created in any folder (as in a read-only one; root may write anywhere, so the
    real thing is shown by :func:`test_unwritable_runs_folder` with ``chattr +i``)."""
    def fail(*args: object, dir: str | None = None, **kwargs: object) -> None:  # noqa: A002 -- mkstemp's name
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
    monkeypatch.setattr("tempfile.mkstemp", fail)


EVAL = "eval --model student-smoke --checkpoint {tmp}/student.safetensors"
CKPT = "eval --model student-smoke --data embedded:denoise25 --checkpoint {tmp}/"
TRAIN = "train --profile smoke --runs-dir {runs}"


def config(name: str, setting: str, *expect: str) -> Case:
    """A ``--set`` override that ``train`` must refuse before anything is written."""
    return Case(f"config-{name}", f"{TRAIN} --set {setting}", expect)


CASES: list[Case] = [
    # --- config: typos and types of profile and train keys, grid specs --------------------------
    config("lr-not-a-number", "student_train.lr=fast", "--set.student_train.lr must be a number > 0, got 'fast'"),
    config("lr-bool", "student_train.lr=true", "student_train.lr must be a number > 0, got True"),
    config("lr-zero", "teacher_train.lr=0", "teacher_train.lr must be a number > 0, got 0"),
    config("steps-text", "student_train.steps=abc", "student_train.steps must be an integer >= 1, got 'abc'"),
    config("steps-fraction", "student_train.steps=2.5", "student_train.steps must be an integer >= 1, got 2.5"),
    config("batch-bool", "student_train.batch=true", "student_train.batch must be an integer >= 1, got True"),
    config("min-lr-negative", "student_train.min_lr=-1", "student_train.min_lr must be a number >= 0, got -1"),
    config("min-lr-above-lr", "student_train.min_lr=0.5", "student_train.min_lr (0.5) must not exceed"),
    config("weight-decay-negative", "student_train.weight_decay=-0.1", "student_train.weight_decay must be"),
    config("grad-clip-negative", "student_train.grad_clip=-1", "student_train.grad_clip must be a number >= 0"),
    config("grad-clip-nan", "student_train.grad_clip=.nan", "student_train.grad_clip must be a number >= 0"),
    config("betas-one", "student_train.betas=[0.9]", "student_train.betas must be two numbers in [0, 1)"),
    config("betas-range", "student_train.betas=[0.9,1]", "student_train.betas must be two numbers in [0, 1)"),
    config("warmup-too-long", "student_train.warmup_steps=4", "student_train.warmup_steps must be in [0, steps=4)"),
    config("warmup-negative", "student_train.warmup_steps=-1", "student_train.warmup_steps must be an integer >= 0"),
    config("val-every-negative", "student_train.val_every=-1", "student_train.val_every must be an integer >= 0"),
    config("checkpoint-every-negative", "teacher_train.checkpoint_every=-5",
           "teacher_train.checkpoint_every must be an integer >= 0"),
    config("threads-negative", "student_train.threads=-2", "student_train.threads must be an integer >= 0"),
    config("val-crop-tiny", "student_train.val_crop=8", "student_train.val_crop must be 0 (whole images) or"),
    config("optimizer-typo", "student_train.optimizer=adamx", "student_train.optimizer must be one of adamw, adam"),
    config("train-key-typo", "student_train.step=3", "unknown train key 'step'", "did you mean 'steps'"),
    config("train-not-a-mapping", "student_train=3", "--set.student_train must be a mapping, got 3"),
    config("profile-key-typo", "eval_max_sid=0", "unknown profile key 'eval_max_sid'", "did you mean 'eval_max_side'"),
    config("eval-max-side-negative", "eval_max_side=-3", "--set.eval_max_side must be 0 (whole images)", "-3"),
    config("throughput-size-one", "throughput_size=[64]", "--set.throughput_size must be two positive integers"),
    config("throughput-size-zero", "throughput_size=[0,64]", "--set.throughput_size must be two positive integers"),
    config("train-data-number", "train_data=5", "--set.train_data must be a string, got 5"),
    config("layout-typo", "layout=rain", "unknown dataset layout 'rain' in --set.layout", "did you mean 'rain13k'"),
    config("teacher-checkpoint-number", "teacher_checkpoint=5", "--set.teacher_checkpoint must be a file path"),
    config("teacher-typo", "teacher=teacher-smok", "unknown model preset 'teacher-smok' in --set.teacher"),
    config("method-options-list", "method_options=[1]", "--set.method_options must be a mapping"),
    config("teacher-task-typo", "teacher_task_train.deblr.steps=9", "unknown task 'deblr'", "did you mean 'deblur'"),
    config("teacher-task-type", "teacher_task_train.deblur.lr=fast",
           "--set.teacher_task_train.deblur.lr must be a number > 0, got 'fast'"),
    config("teacher-task-key", "teacher_task_train.deblur.stesp=9", "unknown train key 'stesp'",
           "in --set.teacher_task_train.deblur"),
    Case("grid-set-lr-not-a-number", "run {grid} --runs-dir {runs} --set student_train.lr=fast --no-progress",
         ("{grid}", "student_train.lr must be a number > 0, got 'fast'")),
    Case("grid-seed-bool", "run {tmp}/g.yaml --runs-dir {runs}", ("{tmp}/g.yaml", "'seeds'", "[True]"),
         setup=write("g.yaml", GRID.replace("seeds: [0]", "seeds: [true]"))),
    Case("grid-not-utf8", "run {tmp}/g.yaml --runs-dir {runs}", ("{tmp}/g.yaml", "not a UTF-8 text file"),
         setup=write("g.yaml", "study: caf\u00e9\n".encode("latin-1"))),
    Case("grid-is-a-directory", "status {tmp} --runs-dir {runs}", ("{tmp} is a directory, not a grid file",)),
    Case("grid-not-yaml", "status {tmp}/g.yaml --runs-dir {runs}", ("{tmp}/g.yaml: not valid YAML",),
         setup=write("g.yaml", "study: [a\nseeds: {\n")),
    # --- images: missing, unpaired, corrupt, oversized, too small to score ------------------------
    Case("image-bomb-png-metrics", "metrics {tmp}/big.png {tmp}/big.png",
         ("image {tmp}/big.png is 100000x100000", "MAX_PIXELS"), setup=write("big.png", png_header(100000, 100000))),
    Case("image-bomb-tiff-metrics", "metrics {tmp}/big.tif {tmp}/big.tif",
         ("image {tmp}/big.tif is 100000x100000", "MAX_PIXELS"), setup=write("big.tif", tiff_header(100000, 100000))),
    Case("image-bomb-eval-folder", f"{EVAL} --data folder:{{tmp}}/set --task denoise25",
         ("image {tmp}/set/target/a.png is 100000x100000", "67,108,864"),
         setup=both(student, png("set/input/a.png", 16, 16), write("set/target/a.png", png_header(100000, 100000)))),
    Case("image-too-small-to-score", f"{EVAL} --data folder:{{tmp}}/set --task denoise25",
         ("image {tmp}/set/target/a.png is 8x8", "at least 11x11"),
         setup=both(student, png("set/input/a.png", 8, 8), png("set/target/a.png", 8, 8))),
    Case("image-not-an-image", "metrics {tmp}/a.png {tmp}/a.png", ("cannot read image {tmp}/a.png",),
         setup=write("a.png", "hello")),
    Case("image-folder-missing", f"{EVAL} --data folder:{{tmp}}/nowhere --task denoise25", ("{tmp}/nowhere",),
         setup=student),
    Case("image-unpaired", f"{EVAL} --data folder:{{tmp}}/set --task denoise25 --layout restormer",
         ("unpaired file {tmp}/set/input/b.png",),
         setup=both(student, png("set/input/a.png", 16, 16), png("set/target/a.png", 16, 16),
                    png("set/input/b.png", 16, 16))),
    # --- checkpoints ------------------------------------------------------------------------------
    Case("checkpoint-missing", CKPT + "none.pth", ("checkpoint file not found: {tmp}/none.pth",)),
    Case("checkpoint-empty", CKPT + "w.pth", ("{tmp}/w.pth: file is empty",), setup=write("w.pth", b"")),
    Case("checkpoint-random-bytes", CKPT + "w.pth", ("{tmp}/w.pth: not a torch (.pth/.pt) or safetensors checkpoint",),
         refuse=("weights_only=False",), setup=write("w.pth", np.random.default_rng(0).bytes(4096))),
    Case("checkpoint-truncated", CKPT + "w.pth", ("{tmp}/w.pth: corrupt or truncated",),
         setup=torch_file("w.pth", lambda: build_model("student-smoke").state_dict(), keep=0.5)),
    Case("checkpoint-pickled-module", CKPT + "w.pth",
         ("{tmp}/w.pth: it holds pickled objects besides tensors", "save a state_dict"),
         refuse=("weights_only=False", "weights_only` set to `False"),
         setup=torch_file("w.pth", lambda: torch.nn.Linear(2, 2))),
    Case("checkpoint-random-safetensors", CKPT + "w.safetensors",
         ("{tmp}/w.safetensors: not a valid safetensors file",),
         setup=write("w.safetensors", np.random.default_rng(0).bytes(4096))),
    Case("checkpoint-wrong-model", "eval --model teacher-smoke --checkpoint {tmp}/student.safetensors "
         "--data embedded:denoise25", ("checkpoint {tmp}/student.safetensors does not fit", "missing keys"),
         setup=student),
    # --- device -----------------------------------------------------------------------------------
    Case("device-cuda-run", "run {grid} --runs-dir {runs} --device cuda --force", ("device 'cuda' requested",),
         marks=(NO_CUDA,)),
    Case("device-cuda-train", f"{TRAIN} --device cuda", ("device 'cuda' requested",), marks=(NO_CUDA,)),
    Case("device-cuda-throughput", "throughput --models student-smoke --device cuda", ("device 'cuda' requested",),
         marks=(NO_CUDA,)),
    Case("device-unknown", "run {grid} --runs-dir {runs} --device tpu", ("device must be one of", "'tpu'")),
    # --- command-line ranges: refused while parsing, before anything is written --------------------
    Case("flag-seed-negative", f"{TRAIN} --seed -5", ("argument --seed: must be an integer >= 0, got -5",)),
    Case("flag-teacher-seed-text", f"{TRAIN} --teacher-seed x", ("argument --teacher-seed:", "'x'")),
    Case("flag-runs-dir-a-file", "train --profile smoke --runs-dir {tmp}/f", ("--runs-dir: {tmp}/f exists and is not",),
         setup=write("f", "")),
    Case("flag-max-side-negative", f"{EVAL} --data embedded:denoise25 --max-side -3", ("argument --max-side:", "-3")),
    Case("flag-max-side-tiny", f"{EVAL} --data embedded:denoise25 --max-side 8", ("argument --max-side:", ">= 16")),
    Case("flag-workers-zero", "run {grid} --runs-dir {runs} --workers 0", ("argument --workers:", ">= 1, got 0")),
    Case("flag-crop-border-negative", "metrics a.png b.png --crop-border -1", ("argument --crop-border:",)),
    Case("flag-complexity-batch-zero", "complexity --models student-smoke --batch 0", ("argument --batch:",)),
    Case("flag-complexity-size-negative", "complexity --models student-smoke --size -8 8", ("argument --size:",)),
    Case("flag-complexity-depth-zero", "complexity --models student-smoke --by-module 0", ("argument --by-module:",)),
    Case("flag-throughput-batch-zero", "throughput --models student-smoke --batch 1 0", ("argument --batch:",)),
    Case("flag-throughput-repeats-zero", "throughput --models student-smoke --repeats 0", ("argument --repeats:",)),
    Case("flag-throughput-warmup-negative", "throughput --models student-smoke --warmup -1", ("argument --warmup:",)),
    Case("flag-throughput-threads-zero", "throughput --models student-smoke --threads 0", ("argument --threads:",)),
    Case("flag-unknown-choice", f"{TRAIN} --role techer", ("argument --role: invalid choice: 'techer'",)),
    # --- the filesystem: a path named, whatever the OSError ----------------------------------------
    Case("os-runs-dir-under-a-file", "train --profile smoke --method scratch --runs-dir {tmp}/f/runs",
         ("{tmp}/f/runs", "Not a directory"), setup=write("f", "")),
    Case("os-read-only-output", f"{EVAL} --data embedded:denoise25 --max-side 32 --out {{tmp}}/ro/eval.json",
         ("{tmp}/ro/eval.json: Permission denied",), setup=student,
         patch=denied("bench.commands.eval.atomic_write_json")),
    # --- the run store ------------------------------------------------------------------------------
    *[Case(f"store-runs-dir-a-file-{command}", f"{command} {{grid}} --runs-dir {{tmp}}/f",
           ("{tmp}/f", "not a folder"), setup=write("f", ""))
      for command in ("run", "status", "report")],
    Case("store-runs-dir-not-writable", "run {grid} --runs-dir {runs} --no-progress",
         ("runs folder {runs} is not writable", "Permission denied"), patch=unwritable_folders),
    Case("store-only-matches-no-cell", "run {grid} --runs-dir {runs} --only seed=99",
         ("--only seed=99 matches no cell of {grid}",)),
    # --- internal errors and Ctrl-C ---------------------------------------------------------------
    Case("internal-error", "models", ("models: internal error: TypeError: boom", "rerun with --debug", "SKD_DEBUG=1"),
         code=1, patch=raises("bench.commands.models.count_params", TypeError("boom"))),
    Case("interrupted", "models", ("models: interrupted",), code=130,
         patch=raises("bench.commands.models.count_params", KeyboardInterrupt())),
]


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(runs folder, grid file)``: :data:`GRID` run to the end (one finished smoke cell)."""
    root = tmp_path_factory.mktemp("finished")
    grid, runs = root / "faults.yaml", root / "runs"
    grid.write_text(GRID)
    assert main(["run", str(grid), "--runs-dir", str(runs), "--no-progress"]) == 0
    assert [json.loads(p.read_text())["status"] for p in runs.glob("cells/*/record.json")] == ["done"]
    return runs, grid


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def finished(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if k.endswith("record.json") and json.loads(v).get("status") == "done"}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=c.marks) for c in CASES])
def test_fault_gives_one_line(case: Case, tmp_path: Path, request: pytest.FixtureRequest,
                              monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("SKD_DEBUG", raising=False)
    uses_runs = "{runs}" in case.argv or "{grid}" in case.argv
    runs, grid = request.getfixturevalue("finished_runs") if uses_runs else (tmp_path / "runs", tmp_path / "g")
    fill = functools.partial(str.format, tmp=tmp_path, runs=runs, grid=grid)
    if case.setup:
        case.setup(tmp_path)
    if case.patch:
        case.patch(monkeypatch)
    before = snapshot(runs) if uses_runs else {}
    capsys.readouterr()
    code = main([fill(arg) for arg in shlex.split(case.argv)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == case.code, err
    assert len(lines) == 1, err
    prefix = "internal error" if case.code == 1 else "interrupted" if case.code == 130 else "error:"
    assert lines[0].startswith("skd-bench ") and prefix in lines[0], lines[0]
    for text in case.expect:
        assert fill(text) in lines[0], lines[0]
    for text in case.refuse:
        assert text not in err
    if uses_runs:
        after = snapshot(runs)
        assert finished(after) == finished(before)
        if not case.writes:
            assert after == before


# --- faults outside the table -------------------------------------------------------------------

def test_debug_flag_and_env_reraise_with_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    raises("bench.commands.models.count_params", TypeError("boom"))(monkeypatch)
    monkeypatch.delenv("SKD_DEBUG", raising=False)
    for argv in (["--debug", "models"], ["models", "--debug"]):
        with pytest.raises(TypeError, match="boom"):
            main(argv)
    monkeypatch.setenv("SKD_DEBUG", "1")
    with pytest.raises(TypeError, match="boom"):
        main(["models"])


def test_cpu_memory_measurement_is_silent_on_fd2(capfd: pytest.CaptureFixture[str]) -> None:
    # kineto writes "USDT: ... profiler_start/stop" straight to file descriptor 2, past sys.stderr
    assert main(["throughput", "--models", "student-smoke", "--size", "32", "32", "--warmup", "0", "--repeats", "1",
                 "--json"]) == 0
    out, err = capfd.readouterr()
    assert json.loads(out)[0]["peak_memory_bytes"] > 0
    assert "USDT" not in err and "profiler_" not in err, err


def test_training_without_a_terminal_logs_progress_lines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from skd_core.train.loop import fit

    monkeypatch.setattr("skd_core.train.runs.fit", functools.partial(fit, log_seconds=0))  # a line after every step
    assert main(["train", "--role", "teacher", "--profile", "smoke", "--set", "teacher_train.steps=3",
                 "--runs-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3, lines
    for step, line in enumerate(lines, 1):
        assert re.fullmatch(rf"teacher teacher-smoke denoise25 seed 0: step {step}/3, loss [0-9.e-]+, "
                            r"elapsed (\d+h)?\d+m\d\ds, ETA (\d+h)?\d+m\d\ds", line), line


def _train_teacher(runs: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench", "train", "--role", "teacher", "--profile", "smoke", "--set",
            "teacher_train.steps=40", "--set", "teacher_train.checkpoint_every=4", "--runs-dir", str(runs), *extra]


@pytest.mark.slow
def test_teacher_killed_mid_training_resumes_bit_identical(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    assert main(_train_teacher(tmp_path / "straight")[3:]) == 0  # in this process: only the kill needs another
    runs = tmp_path / "killed"
    proc = subprocess.Popen(_train_teacher(runs), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(runs.glob("teachers/*/checkpoint/state.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (folder,) = runs.glob("teachers/*")
    assert not (folder / "record.json").exists(), "the kill should land before the end of the schedule"
    assert main(_train_teacher(runs, "--resume")[3:]) == 0
    record = json.loads((folder / "record.json").read_text())
    assert 0 < record["training"]["resumed_from"] < 40
    (straight,) = (tmp_path / "straight").glob("teachers/*")
    assert straight.name == folder.name
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(folder / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- the run store: a finished grid of two seeds damaged, then status, report and run ------------
# (each test works on a private copy; a damaged record is shown by path, never averaged, set aside
# and redone by ``run``, and no other finished record changes)

STORE_GRID = """\
study: store
profile: smoke
tasks: [denoise25]
seeds: [0, 1]
base: {method: skd}
axes: {options.mca_dims: [none]}
"""


@pytest.fixture(scope="module")
def store_finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder where the tiny grid (2 SKD cells, 2 scratch cells, a teacher) has finished."""
    root = tmp_path_factory.mktemp("finished")
    (root / "store.yaml").write_text(STORE_GRID)
    assert main(["run", str(root / "store.yaml"), "--runs-dir", str(root / "runs"), "--no-progress"]) == 0
    return root


@pytest.fixture
def runs(store_finished: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the finished runs folder (``spec`` beside it as ``store.yaml``)."""
    shutil.copy(store_finished / "store.yaml", tmp_path / "store.yaml")
    shutil.copytree(store_finished / "runs", tmp_path / "runs")
    yield tmp_path / "runs"


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _status(capsys: pytest.CaptureFixture[str], runs: Path) -> dict[str, dict]:
    code, out, _ = _cli(capsys, "status", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--json")
    assert code == 0
    return {r["id"]: r for r in json.loads(out[out.index("["):])}


def _records(runs: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in runs.rglob("record.json")}


def _cell(runs: Path, capsys: pytest.CaptureFixture[str], label: str = "mca_dims=none", seed: int = 1) -> Path:
    row = next(r for r in _status(capsys, runs).values() if r["label"] == label and r["seed"] == seed)
    return runs / "cells" / row["id"]


@pytest.mark.parametrize("damage", ["truncated", "empty", "a list"])
def test_corrupt_record_is_shown_set_aside_and_redone(runs: Path, capsys, damage: str) -> None:
    cell = _cell(runs, capsys)
    record = cell / "record.json"
    good = json.loads(record.read_text())
    others = {p: b for p, b in _records(runs).items() if p != record}
    if damage == "truncated":
        os.truncate(record, 300)
    else:
        record.write_text("" if damage == "empty" else "[]")
    row = _status(capsys, runs)[cell.name]
    assert row["status"] == "corrupt" and str(record) in row["error"]
    code, _, err = _cli(capsys, "report", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--out",
                        str(runs.parent / "results"))
    assert code == 0, err
    table = pd.read_csv(runs.parent / "results" / "store" / "tables" / "summary.csv").set_index("label")
    assert table.loc["mca_dims=none", "n_done"] == 1  # the corrupt cell is not counted as finished
    code, _, err = _cli(capsys, "run", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--no-progress")
    assert code == 0 and f"corrupt record {record}" in err and "set aside" in err
    assert json.loads(record.read_text())["metrics"] == good["metrics"]  # redone, bit for bit
    assert len(list(cell.glob("record.json.corrupt-*"))) == 1
    assert {p: p.read_bytes() for p in others} == others  # no finished record changed
    assert {r["status"] for r in _status(capsys, runs).values()} == {"done"}


def test_force_only_id_on_a_corrupt_record(runs: Path, capsys) -> None:
    cell = _cell(runs, capsys)
    (cell / "record.json").write_text("{")
    code, out, err = _cli(capsys, "run", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--no-progress",
                          "--force", "--only", f"id={cell.name}", "--json")
    assert code == 0, err
    assert json.loads(out)["done"] == 1 and _status(capsys, runs)[cell.name]["status"] == "done"


def test_corrupt_teacher_record_is_set_aside_and_the_teacher_redone(runs: Path, capsys) -> None:
    teacher = next((runs / "teachers").iterdir())
    (teacher / "record.json").write_text("")
    cell = _cell(runs, capsys)
    (cell / "record.json").unlink()
    code, _, err = _cli(capsys, "run", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--no-progress")
    assert code == 0, err
    assert json.loads((teacher / "record.json").read_text())["status"] == "done"
    assert len(list(teacher.glob("record.json.corrupt-*"))) == 1


def test_non_finite_metric_is_a_failed_cell_never_averaged(runs: Path, capsys) -> None:
    cell = _cell(runs, capsys)
    record = json.loads((cell / "record.json").read_text())
    record["metrics"]["psnr"] = math.nan
    (cell / "record.json").write_text(json.dumps(record))
    row = _status(capsys, runs)[cell.name]
    assert row["status"] == "failed" and "non-finite metric psnr=nan" in row["error"]
    assert _cli(capsys, "report", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--out",
                str(runs.parent / "results"))[0] == 0
    table = pd.read_csv(runs.parent / "results" / "store" / "tables" / "summary.csv").set_index("label")
    other = json.loads((_cell(runs, capsys, seed=0) / "record.json").read_text())["metrics"]["psnr"]
    assert table.loc["mca_dims=none", "n_done"] == 1
    assert table.loc["mca_dims=none", "psnr_mean"] == pytest.approx(other, abs=1e-4)  # the CSV keeps 4 decimals
    code, _, err = _cli(capsys, "run", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--no-progress")
    assert code == 0, err
    assert math.isfinite(json.loads((cell / "record.json").read_text())["metrics"]["psnr"])


def _lock(pid: int, start: str | None, host: str = socket.gethostname()) -> bytes:
    return json.dumps({"host": host, "pid": pid, "start": start, "time": time.time()}).encode()


def _own_start() -> str | None:
    return process_start(os.getpid())


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@dataclass(frozen=True)
class LockFault:
    """A cell's ``run.lock`` as a crash, a reused pid or another host leaves it: ``content()``,
    last touched ``age`` seconds ago; ``stale``: what the takeover's warning says (None: live, the
    runner leaves the cell alone). The rule is in bench/store/locks.py."""

    name: str
    content: Callable[[], bytes]
    stale: str | None
    age: float = 0.0


LOCK_FAULTS = [
    LockFault("random-bytes", lambda: b"\xff" + np.random.default_rng(0).bytes(63), "unreadable bytes"),
    LockFault("empty", lambda: b"", "the file is empty"),  # what a crash of the old O_EXCL-then-write lock left
    LockFault("truncated", lambda: _lock(os.getpid(), _own_start())[:25], "truncated JSON"),
    LockFault("dead-pid", lambda: _lock(_dead_pid(), "unknown"), "is not running on this host"),
    LockFault("pid-reused", lambda: _lock(1, _own_start()), "pid 1 is another process now"),  # pid 1: alive, not us
    LockFault("other-host-expired", lambda: _lock(1, None, "elsewhere.invalid"), "elsewhere.invalid's lock",
              age=LEASE_SECONDS + 60),
    LockFault("other-host-fresh", lambda: _lock(1, None, "elsewhere.invalid"), None),
    LockFault("this-process", lambda: _lock(os.getpid(), _own_start()), None),  # live: the runner is this process
]


@pytest.mark.parametrize("fault", [pytest.param(f, id=f.name) for f in LOCK_FAULTS])
def test_a_lock_is_taken_over_once_when_stale_and_never_when_live(runs: Path, capsys, fault: LockFault) -> None:
    cell = _cell(runs, capsys, label="scratch")
    (cell / "record.json").unlink()
    lock = cell / "run.lock"
    lock.write_bytes(before := fault.content())
    if fault.age:
        os.utime(lock, (time.time() - fault.age,) * 2)
    assert _status(capsys, runs)[cell.name]["status"] == ("pending" if fault.stale else "running")
    code, out, err = _cli(capsys, "run", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--no-progress",
                          "--json")
    assert code == 0, err
    summary, warnings = json.loads(out), [line for line in err.splitlines() if "lock" in line]
    if fault.stale is None:
        assert (summary["done"], summary["running_elsewhere"], warnings) == (0, 1, [])
        assert lock.read_bytes() == before and not (cell / "record.json").exists()
        return
    assert summary["done"] == 1 and len(warnings) == 1, err
    assert f"took over the stale lock {lock}: " in warnings[0] and fault.stale in warnings[0]
    assert _status(capsys, runs)[cell.name]["status"] == "done" and not lock.exists()


def test_unwritable_runs_folder(runs: Path, capsys) -> None:
    before = _records(runs)
    if subprocess.run(["chattr", "+i", str(runs)], capture_output=True).returncode != 0:
        if os.geteuid() == 0:
            pytest.skip("root without chattr: no way to make a folder unwritable here")
        runs.chmod(0o555)
    try:
        code, _, err = _cli(capsys, "run", str(runs.parent / "store.yaml"), "--runs-dir", str(runs), "--no-progress")
    finally:
        subprocess.run(["chattr", "-i", str(runs)], capture_output=True)
        runs.chmod(0o755)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"runs folder {runs} is not writable" in err
    assert _records(runs) == before
