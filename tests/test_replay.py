"""Teacher replay: a player's teacher pass equals the computed one bit for bit, taps inside a block
make it run, gradient-recording calls are never replayed, and a replayed grid gives the records of
a grid run without replay."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bench.execute.cells import cells_of
from bench.execute.plan import replay_plan
from bench.execute.replay import PLAYER, RECORDER, ReplaySpec, remove_stale, replaying, run_folder
from bench.execute.runner import run_grids
from bench.spec.grid import load_grid
from skd_core.models import build_model
from skd_core.taps import FeatureTaps


def teacher() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("teacher-smoke").eval().requires_grad_(False)


def test_recorded_blocks_replay_exactly_and_taps_still_fire(tmp_path: Path):
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = teacher()(x)
    with replaying(teacher(), ReplaySpec(tmp_path, RECORDER, "t")) as recorder, torch.no_grad():
        assert torch.equal(recorder.teacher(x), expected)
    blocks = len(dict(teacher().named_children()))
    assert recorder.stats.as_dict() == {"calls": 1, "replayed": 0, "computed": blocks, "written": 1}

    model = teacher()
    with replaying(model, ReplaySpec(tmp_path, PLAYER, "t")) as player, torch.no_grad():
        with FeatureTaps(model, ["encoder_level1", "latent"]) as taps:
            out, feats = taps.run(x)
        assert torch.equal(out, expected) and player.stats.replayed == blocks and player.stats.computed == 0
        with FeatureTaps(teacher(), ["encoder_level1", "latent"]) as reference:
            _, want = reference.run(x)
        assert all(torch.equal(feats[p], want[p]) for p in want)
        with FeatureTaps(model, ["encoder_level1.0"]):  # a tap inside a block: that block runs
            assert torch.equal(model(x), expected)
        assert player.stats.computed == 1 and player.stats.written == 0
    assert "forward" not in model.__dict__  # closed: the class's forward again


def test_no_replay_under_autograd_or_for_another_teacher(tmp_path: Path):
    x = torch.rand(2, 3, 16, 16)
    with replaying(teacher(), ReplaySpec(tmp_path, RECORDER, "t")) as recorder, torch.no_grad():
        recorder.teacher(x)
    model = teacher()
    with replaying(model, ReplaySpec(tmp_path, PLAYER, "t")) as player:
        model(x.requires_grad_(True)).sum().backward()  # a gradient is wanted: computed, not replayed
        assert player.stats.calls == 0 and x.grad is not None
    with replaying(model, ReplaySpec(tmp_path, PLAYER, "another teacher")) as other, torch.no_grad():
        model(x)
        assert other.stats.calls == 1 and other.stats.replayed == 0


GRID = """
study: replayed
profile: smoke
tasks: [denoise25]
seeds: [0]
axes:
  method: [output_kd, fitnet, skd]
"""


def test_plan_records_first_and_groups_by_batches(tmp_path: Path):
    spec = tmp_path / "g.yaml"
    spec.write_text(GRID.replace("seeds: [0]", "seeds: [0, 1]"))
    cells = cells_of(load_grid(spec))
    ordered, specs = replay_plan(cells, tmp_path)
    assert sorted(c.id for c in ordered) == sorted(c.id for c in cells)
    roles = [specs[c.id].role if c.id in specs else None for c in ordered]
    assert roles == [RECORDER, RECORDER, PLAYER, PLAYER, PLAYER, PLAYER, None, None]  # scratch cells last, no replay
    assert {c.job.method for c in ordered[:2]} == {"output_kd"}
    assert len({s.folder for s in specs.values()}) == 2  # one group per seed

    spec.write_text(GRID.replace("seeds: [0]", "seeds: [0, 1, 2]"))
    ordered, specs = replay_plan(cells_of(load_grid(spec)), tmp_path)
    seeds = [(c.seed, specs[c.id].role) for c in ordered if c.id in specs]
    assert seeds == [(0, RECORDER), (1, RECORDER), (0, PLAYER), (0, PLAYER), (2, RECORDER), (1, PLAYER),
                     (1, PLAYER), (2, PLAYER), (2, PLAYER)]  # each recorder one group ahead of its players


def test_replayed_grid_gives_the_records_of_a_plain_run(tmp_path: Path):
    spec = tmp_path / "g.yaml"
    spec.write_text(GRID)
    grid = load_grid(spec)
    plain = run_grids([grid], tmp_path / "plain", progress=False, replay=False)
    replayed = run_grids([grid], tmp_path / "replayed", progress=False)
    assert plain.done == replayed.done == 4 and plain.failed == replayed.failed == 0

    def records(root: Path) -> dict[str, dict]:
        return {p.parent.name: json.loads(p.read_text()) for p in (root / "cells").glob("*/record.json")}

    a, b = records(tmp_path / "plain"), records(tmp_path / "replayed")
    assert a.keys() == b.keys()
    for cid in a:
        assert a[cid]["metrics"] == b[cid]["metrics"]
        assert a[cid]["training"]["history"] == b[cid]["training"]["history"]
        assert "teacher_replay" not in a[cid]
    roles = {r["config"]["method"]: r.get("teacher_replay") for r in b.values()}
    assert roles["scratch"] is None and roles["output_kd"]["role"] == RECORDER
    assert roles["fitnet"]["role"] == roles["skd"]["role"] == PLAYER
    assert roles["fitnet"]["replayed"] > 0 and roles["skd"]["replayed"] > 0
    assert not any((tmp_path / "replayed" / "replay").rglob("*.pt"))  # entries deleted with the run


def test_a_killed_runs_entries_go_when_the_next_run_starts(tmp_path: Path):
    import os
    import socket
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that has exited
    host = socket.gethostname()
    stale = tmp_path / "replay" / f"{host}-{dead.pid}-aaaa"
    live = tmp_path / "replay" / f"{host}-{os.getpid()}-bbbb"
    other = tmp_path / "replay" / f"elsewhere-{dead.pid}-cccc"  # another host's: liveness unknown here
    for folder in (stale, live, other):
        (folder / "group").mkdir(parents=True)
        (folder / "group" / "entry.pt").write_bytes(b"x")
    assert remove_stale(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()
    assert run_folder(tmp_path).name.startswith(f"{host}-{os.getpid()}-")
