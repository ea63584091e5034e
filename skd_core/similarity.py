"""Teacher-student feature similarity: linear CKA (Kornblith et al., "Similarity of Neural Network
Representations Revisited", ICML 2019) and a training probe that tracks it per tap.

Linear CKA of features ``X`` (``n x p``) and ``Y`` (``n x q``) over the same ``n`` examples, after
centring every column (feature) over the examples::

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)

in [0, 1]; 1 for ``Y = X``, invariant to orthogonal transforms and isotropic scaling of either side,
and defined for ``p != q`` (no adapters needed). Here a ``B, C, H, W`` tap feature is read as
``n = B*H*W`` examples (every spatial position of every image) of ``C`` channel features, so
student and teacher must agree on ``B, H, W`` (they do at the same tap of the Restormer family).
Computed in float64 in the feature-space form above (``C x C`` products, never ``n x n``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .errors import ConfigError
from .taps import FeatureTaps, as_feature_map


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of ``x`` (``n x p``) and ``y`` (``n x q``), rows the examples (module doc)."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[0] != y.shape[0]:
        raise ConfigError(f"CKA needs n x p and n x q features, got {tuple(x.shape)} and {tuple(y.shape)}")
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    cross = (y.T @ x).square().sum()
    return float(cross / ((x.T @ x).norm() * (y.T @ y).norm()))


def feature_cka(student: torch.Tensor, teacher: torch.Tensor) -> float:
    """:func:`linear_cka` of two ``B, C, H, W`` features, read as ``B*H*W`` examples of ``C`` channels."""
    if student.dim() != 4 or teacher.dim() != 4 or student.shape[0] != teacher.shape[0] \
            or student.shape[2:] != teacher.shape[2:]:
        raise ConfigError(f"feature CKA needs B, C, H, W features of equal B, H, W, got {tuple(student.shape)} "
                          f"and {tuple(teacher.shape)}")
    return linear_cka(*(f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]) for f in (student, teacher)))


def _tap_features(model: nn.Module, paths: Sequence[str], batch: torch.Tensor, who: str) -> dict[str, torch.Tensor]:
    """The tapped features of ``model`` on ``batch`` in eval mode under no_grad; the model's mode is
    restored after."""
    was_training = model.training
    model.eval()
    try:
        with FeatureTaps(model, paths, name=who) as taps, torch.no_grad():
            _, features = taps.run(batch, stop_early=True)
    finally:
        model.train(was_training)
    return {p: as_feature_map(p, features[p], who) for p in paths}


class SimilarityProbe:
    """``probe()`` -> ``{"sim/<tap>": CKA}``: linear CKA between the student's and the teacher's
    features at ``taps`` on a fixed ``batch`` (``B, 3, H, W`` on the models' device). The teacher's
    features are computed once; each call runs the student in eval mode under no_grad and puts
    its mode back, so training is unchanged (the probe draws no random numbers)."""

    def __init__(self, student: nn.Module, teacher: nn.Module, batch: torch.Tensor, taps: Sequence[str]) -> None:
        self.student = student
        self.batch = batch
        self.taps = tuple(taps)
        self.teacher_features = _tap_features(teacher, self.taps, batch, "teacher")

    def __call__(self) -> dict[str, float]:
        student = _tap_features(self.student, self.taps, self.batch, "student")
        return {f"sim/{p}": feature_cka(student[p], self.teacher_features[p]) for p in self.taps}
