"""Teacher replay: a player's teacher pass equals the computed one bit for bit, taps inside a block
make it run, gradient-recording calls are never replayed, and a replayed grid gives the records of
a grid run without replay."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bench.execute.cells import cells_of
from bench.execute.plan import replay_plan
from bench.execute.replay import PLAYER, RECORDER, ReplaySpec, claim_run_folder, remove_stale, replaying
from bench.execute.runner import run_grids
from bench.spec.grid import load_grid
from bench.store import RunStore
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
    for cid in a:  # one machine identity (docs/guide.md): a rerun gives the same bits
        assert a[cid]["provenance"]["identity"] == b[cid]["provenance"]["identity"]
        assert a[cid]["metrics"] == b[cid]["metrics"]
        assert a[cid]["training"]["history"] == b[cid]["training"]["history"]
        stores = [RunStore(tmp_path / "plain"), RunStore(tmp_path / "replayed")]
        assert len({s.weights(s.cell_dir(cid)).read_bytes() for s in stores}) == 1
        assert "teacher_replay" not in a[cid]
    roles = {r["config"]["method"]: r.get("teacher_replay") for r in b.values()}
    assert roles["scratch"] is None and roles["output_kd"]["role"] == RECORDER
    assert roles["fitnet"]["role"] == roles["skd"]["role"] == PLAYER
    assert roles["fitnet"]["replayed"] > 0 and roles["skd"]["replayed"] > 0
    assert not any((tmp_path / "replayed" / "replay").rglob("*.pt"))  # entries deleted with the run


def test_a_killed_runs_entries_go_when_the_next_run_starts(tmp_path: Path):
    import json
    import os
    import socket
    import subprocess

    base = RunStore(tmp_path).replay_dir()
    live, live_lock = claim_run_folder(base)
    assert live.name.startswith(f"{socket.gethostname()}-{os.getpid()}-") and live_lock.held
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that has exited
    killed = base / f"{socket.gethostname()}-{dead.pid}-aaaa"
    killed.with_name(killed.name + ".lock").write_text(json.dumps(
        {"host": socket.gethostname(), "pid": dead.pid, "start": "x", "time": 0, "token": "t"}))
    unowned = base / "elsewhere-123-bbbb"  # no owner lock at all: never a live run's
    elsewhere = base / "elsewhere-456-cccc"  # another host's, its lease fresh: left alone
    elsewhere.with_name(elsewhere.name + ".lock").write_text(json.dumps(
        {"host": "elsewhere", "pid": 456, "start": "x", "time": 0, "token": "t"}))
    orphan = base / f"{socket.gethostname()}-{dead.pid}-dddd.lock"  # a lock whose folder went
    orphan.write_text(killed.with_name(killed.name + ".lock").read_text())
    for folder in (live, killed, unowned, elsewhere):
        (folder / "group").mkdir(parents=True)
        (folder / "group" / "entry.pt").write_bytes(b"x")
    assert remove_stale(base) == sorted([killed, unowned])
    assert live.exists() and elsewhere.exists() and not killed.exists() and not unowned.exists()
    assert not killed.with_name(killed.name + ".lock").exists() and not orphan.exists()
    live_lock.release()
    assert remove_stale(base) == [live]  # released: the folder's run is over
