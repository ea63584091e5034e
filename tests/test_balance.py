"""Loss balance: per-term gradient norms and cosines, recorded at evenly spaced steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from skd_core.data import train_crops
from skd_core.methods import build_distiller
from skd_core.models import build_model
from skd_core.train.config import TrainConfig
from skd_core.train.loop import MONITOR_POINTS, fit


def _skd(seed: int = 0):
    torch.manual_seed(seed)
    student, teacher = build_model("student-smoke"), build_model("teacher-smoke")
    return build_distiller("skd", student, teacher, {}, torch.zeros(1, 3, 32, 32))


def test_recorded_gradient_norms_equal_direct_autograd():
    distiller = _skd()
    lq, gt = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    recorded = distiller.balance(lq, gt)
    assert all(p.grad is None for p in distiller.parameters())  # balance leaves no gradient behind
    params = list(distiller.student.parameters())
    direct = {}
    for name in ("pixel_l1", "skd_feature", "skd_channel", "skd_spatial", "contrastive"):
        step = distiller.step(lq, gt)
        terms = {"pixel_l1": torch.nn.functional.l1_loss(step.student_out, gt), **distiller.method.terms(step)}
        distiller.zero_grad(set_to_none=True)
        terms[name].backward()
        direct[name] = torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel())
                                  for p in params])
    distiller.zero_grad(set_to_none=True)
    total = sum(float(g.norm()) for g in direct.values())
    for name, grad in direct.items():
        assert recorded[f"grad/{name}"] == pytest.approx(float(grad.norm()), rel=1e-6)
        cosine = float(grad.double() @ direct["pixel_l1"].double()) / float(grad.norm() * direct["pixel_l1"].norm())
        assert abs(recorded[f"cos/{name}"] - cosine) < 1e-5
        assert abs(recorded[f"share/{name}"] - float(grad.norm()) / total) < 1e-6
    assert recorded["cos/pixel_l1"] > 0.99999
    assert sum(v for k, v in recorded.items() if k.startswith("share/")) == pytest.approx(1.0)


def test_balance_is_logged_at_evenly_spaced_steps_and_changes_nothing(tmp_path: Path):
    cfg = TrainConfig(steps=23, batch=2, crop=32, lr=1e-3)
    crops = train_crops("embedded", "denoise25", 32, cfg.steps * cfg.batch, 0)
    runs = {}
    for monitored in (False, True):
        distiller = _skd()
        result = fit(distiller, crops, cfg, tmp_path / str(monitored), progress=False,
                     monitor=distiller.balance if monitored else None)
        runs[monitored] = (result, [p.detach().clone() for p in distiller.student.parameters()])
    rows = [r for r in runs[True][0].history if r.get("monitor")]
    assert [r["step"] for r in rows][0] == 0 and rows[-1]["step"] == cfg.steps - 1
    assert len(rows) == MONITOR_POINTS and len({r["step"] for r in rows}) == MONITOR_POINTS
    assert all("grad/contrastive" in r and "share/skd_channel" in r for r in rows)
    assert not any(r.get("monitor") for r in runs[False][0].history)
    for a, b in zip(runs[False][1], runs[True][1], strict=True):
        assert torch.equal(a, b)  # measuring the balance does not change the training
