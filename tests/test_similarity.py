"""Linear CKA against an independent float64 computation, and the training probe that logs it:
it changes nothing in the training and resumes exactly."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from skd_core.data import load_pairs, train_crops
from skd_core.methods import build_distiller
from skd_core.models import build_model
from skd_core.similarity import SimilarityProbe, feature_cka, linear_cka
from skd_core.taps import DEFAULT_TAPS
from skd_core.train.config import TrainConfig
from skd_core.train.loop import fit
from skd_core.train.runs import probe_batch

CFG = TrainConfig(steps=6, batch=2, crop=32, lr=1e-3, checkpoint_every=2)


def gram_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA in its HSIC form over ``n x n`` Gram matrices (Kornblith et al. eq. 3-4), float64 numpy."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.trace(a @ h @ b @ h))

    return hsic(k, l) / math.sqrt(hsic(k, k) * hsic(l, l))


def test_cka_of_a_feature_with_itself_is_one() -> None:
    x = torch.randn(50, 7)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_cka_invariant_to_orthogonal_transform_and_isotropic_scaling() -> None:
    x, y = torch.randn(40, 6, dtype=torch.float64), torch.randn(40, 9, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(9, 9, dtype=torch.float64))
    base = linear_cka(x, y)
    assert linear_cka(3.5 * x, y @ q) == pytest.approx(base, abs=1e-12)
    assert linear_cka(x + 2.0, 0.1 * y) == pytest.approx(base, abs=1e-12)  # centring removes offsets


def test_cka_reference_values() -> None:
    # one feature each: CKA is the squared Pearson correlation; x = (1, 2, 3), y = x^2 gives
    # centred (-1, 0, 1) and (-11, -2, 13) / 3, so 8^2 / (2 * 294 / 9) = 48 / 49
    x, y = torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[1.0], [4.0], [9.0]])
    assert linear_cka(x, y) == pytest.approx(48 / 49, abs=1e-12)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((30, 4)), rng.standard_normal((30, 6))
    b[:, :2] += a[:, :2]  # partly shared
    assert linear_cka(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(gram_cka(a, b), abs=1e-12)


def test_feature_cka_reads_positions_as_examples() -> None:
    s, t = torch.randn(2, 4, 3, 5), torch.randn(2, 8, 3, 5)
    rows = [f.permute(0, 2, 3, 1).reshape(30, -1).double().numpy() for f in (s, t)]
    assert feature_cka(s, t) == pytest.approx(gram_cka(*rows), abs=1e-12)
    with pytest.raises(ValueError, match="equal B, H, W"):
        feature_cka(s, t[:, :, :2])


class Interrupt(Exception):  # noqa: N818 -- stands for a kill, not an error
    pass


class CrashAt(Dataset):
    """Raises when item ``index`` is read, as a run killed while building that batch stops."""

    def __init__(self, data: Dataset, index: int) -> None:
        self.data, self.index = data, index

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        if i == self.index:
            raise Interrupt
        return self.data[i]


def _run(folder: Path, with_probe: bool, crash_at_step: int | None = None, resume: bool = False, seed: int = 0):
    """A smoke scratch student trained for :data:`CFG`, probed against an untrained smoke teacher
    (fixed init)."""
    torch.manual_seed(99)
    teacher = build_model("teacher-smoke").eval()  # the same in every run
    torch.manual_seed(seed)
    student = build_model("student-smoke")
    distiller = build_distiller("scratch", student)
    batch = probe_batch(load_pairs("embedded", "denoise25", split="test"), torch.device("cpu"))
    probe = SimilarityProbe(student, teacher, batch, DEFAULT_TAPS) if with_probe else None
    data = train_crops("embedded", "denoise25", CFG.crop, CFG.steps * CFG.batch, seed=3)
    if crash_at_step is not None:
        data = CrashAt(data, crash_at_step * CFG.batch)
    result = fit(distiller, data, CFG, folder, probe=probe, resume=resume, progress=False)
    assert student.training  # the probe put the student back in train mode
    return distiller, result


def test_probe_changes_nothing_and_is_logged(tmp_path: Path) -> None:
    plain, plain_result = _run(tmp_path / "plain", with_probe=False)
    probed, result = _run(tmp_path / "probed", with_probe=True)
    for (name, a), b in zip(plain.state_dict().items(), probed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    logged = [h for h in result.history if "sim/latent" in h]
    assert [h["step"] for h in logged] == [0, 1, 2, 3, 4, 5, 6]  # 10 points round to every step of 6
    assert all(0.0 <= h[f"sim/{tap}"] <= 1.0 for h in logged for tap in DEFAULT_TAPS)
    assert [h for h in result.history if "sim/latent" not in h] == plain_result.history


def test_probe_history_resumes_exactly(tmp_path: Path) -> None:
    straight, straight_result = _run(tmp_path / "a", with_probe=True)
    with pytest.raises(Interrupt):  # dies building batch 5, after the checkpoint at step 4
        _run(tmp_path / "b", with_probe=True, crash_at_step=5)
    resumed, result = _run(tmp_path / "b", with_probe=True, resume=True, seed=123)
    assert result.resumed_from == 4
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert result.history == straight_result.history


def test_grid_students_outside_the_restormer_family_are_not_probed() -> None:
    from torch import nn

    from skd_core.models import build_model
    from skd_core.taps import DEFAULT_TAPS
    from skd_core.train.runs import shared_taps

    teacher = build_model("teacher-smoke")
    assert shared_taps(build_model("student-smoke"), teacher) == DEFAULT_TAPS
    assert shared_taps(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1)), teacher) == ()
