"""A job's logs (bench.execute.tblog, bench.execute.progress): TensorBoard events and train.log from its
history, the ``SKD_LOG`` switch, the per-cell line on a pipe and the variant on the training bar."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bench.execute import runner
from bench.execute.cells import cells_of
from bench.execute.runner import run_grids
from bench.execute.tblog import LOG_ENV, TB, TRAIN_LOG, log_finish
from bench.spec.grid import load_grid
from skd_core.errors import ConfigError

GRID = ("study: tblog\nprofile: smoke\ntasks: [denoise25]\nseeds: [0]\nreference: false\n"
        "cells:\n  - {label: skd-variant, method: skd}\n"
        "  - {label: broken, method: fitnet, options: {taps: [encoder_level9]}}\n")


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The grid run once (progress on, stderr a pipe, so no bar: one line per finished cell)."""
    tmp = tmp_path_factory.mktemp("tblog")
    (tmp / "tblog.yaml").write_text(GRID)
    grid = load_grid(tmp / "tblog.yaml")
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(io.StringIO()) as err:  # not a terminal
        mp.delenv(LOG_ENV, raising=False)
        mp.setattr(runner, "measure_all", lambda *args: {})  # the architectures' throughput: not logged
        summary = run_grids([grid], tmp / "runs", progress=True)
    cells = {c.label: c for c in cells_of(grid)}
    return {"runs": tmp / "runs", "summary": summary, "cells": cells, "stderr": err.getvalue()}


def events(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder / TB))
    acc.Reload()
    return acc


def test_events_hold_losses_shares_scores_and_images(grid_run: dict) -> None:
    assert grid_run["summary"].done == 1 and grid_run["summary"].failed == 1
    folder = grid_run["runs"] / "cells" / grid_run["cells"]["skd-variant"].id
    record = json.loads((folder / "record.json").read_text())
    acc = events(folder)
    scalars, images = set(acc.Tags()["scalars"]), set(acc.Tags()["images"])
    assert {"train/loss", "train/lr", "train/pixel_l1", "monitor/share/pixel_l1", "test/psnr", "test/ssim"} <= scalars
    assert any(t.startswith("probe/sim/") for t in scalars) and any(t.startswith("monitor/entropy/") for t in scalars)
    losses = [r for r in record["training"]["history"] if "loss" in r]
    assert [e.step for e in acc.Scalars("train/loss")] == [r["step"] for r in losses]
    assert [e.value for e in acc.Scalars("train/loss")] == pytest.approx([r["loss"] for r in losses], rel=1e-6)
    assert acc.Scalars("test/psnr")[0].value == pytest.approx(record["metrics"]["psnr"], rel=1e-6)
    assert images == {f"restored/{name}" for name in record["outputs"]}
    image = acc.Images(next(iter(images)))[0]
    assert (image.width, image.height) == (64, 64)  # eval_max_side of the smoke profile, whole HWC image
    teacher = events(grid_run["runs"] / "teachers" / record["teacher"]["id"])
    assert {"train/loss", "train/lr", "test/psnr"} <= set(teacher.Tags()["scalars"])


def test_logs_stay_out_of_the_record_and_id(grid_run: dict) -> None:
    cell = grid_run["cells"]["skd-variant"]
    folder = grid_run["runs"] / "cells" / cell.id
    text = (folder / "record.json").read_text()
    assert (folder / TB).is_dir() and TB + "/" not in text and TRAIN_LOG not in text
    assert json.loads(text)["id"] == cell.id == cell.job.id()


def test_train_log_has_start_history_and_end(grid_run: dict) -> None:
    done = (grid_run["runs"] / "cells" / grid_run["cells"]["skd-variant"].id / TRAIN_LOG).read_text().splitlines()
    assert " start student skd student-smoke denoise25 seed 0 " in done[0]
    assert any(line.startswith("train step 4/4: loss ") for line in done)
    assert any(line.startswith("monitor step 0/4: ") and "share/pixel_l1" in line for line in done)
    assert " done: psnr " in done[-1] and " dB" in done[-1]
    broken = grid_run["runs"] / "cells" / grid_run["cells"]["broken"].id
    lines = (broken / TRAIN_LOG).read_text().splitlines()
    assert " start student fitnet " in lines[0] and " failed: " in lines[-1] and "encoder_level9" in lines[-1]
    assert not (broken / TB).exists()


def test_one_line_per_finished_cell_names_its_variant(grid_run: dict) -> None:
    # the grid's own bar (cells done) may share a line, drawn with carriage returns
    lines = [m.group(0) for m in re.finditer(r"cell [0-9a-f]+ tblog [^\r\n]*", grid_run["stderr"])]
    done, broken = grid_run["cells"]["skd-variant"], grid_run["cells"]["broken"]
    assert len(lines) == 2
    assert lines[0].startswith(f"cell {done.id} tblog denoise25 skd-variant seed=0: done, PSNR ")
    assert lines[0].endswith(" s") and " dB, " in lines[0]
    assert lines[1].startswith(f"cell {broken.id} tblog denoise25 broken seed=0: failed, ")


def test_switch_off_writes_no_events_and_a_bad_value_is_one_error(tmp_path: Path, monkeypatch) -> None:
    record = {"metrics": {"psnr": 30.0}, "training": {"steps": 2, "seconds": 1.0,
                                                       "history": [{"step": 2, "loss": 0.5, "lr": 1e-3}]}}
    kept = {"a": (np.zeros((8, 8, 3), np.uint8),) * 3}
    monkeypatch.setenv(LOG_ENV, "none")
    log_finish(tmp_path / "off", record, kept)
    assert not (tmp_path / "off" / TB).exists()
    assert "train step 2/2: loss 0.5" in (tmp_path / "off" / TRAIN_LOG).read_text()
    monkeypatch.setenv(LOG_ENV, "tensorbord")
    with pytest.raises(ConfigError, match=r"SKD_LOG='tensorbord'.*tensorboard, none"):
        log_finish(tmp_path / "bad", record, kept)
    monkeypatch.delenv(LOG_ENV)
    for _ in range(2):  # a job done again replaces its events
        log_finish(tmp_path / "on", record, kept)
    assert len(list((tmp_path / "on" / TB).iterdir())) == 1
    assert [e.value for e in events(tmp_path / "on").Scalars("test/psnr")] == [30.0]
