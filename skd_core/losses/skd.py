"""The SKD feature loss ``L_GK`` (docs/design.md section 1).

``L_GK = sum over taps [ D(S, T) + alpha1 (D(S_c, T) + D(S_s, T)) ]`` where ``S`` is the
*adapted* student feature (``B, C_T, H, W``), ``T`` the teacher feature, ``S_c`` / ``S_s`` the
channel / spatial cross-net attention of ``S`` queried by ``T`` (:mod:`skd_core.mca`) and ``D``
a feature distance (:mod:`skd_core.losses.distance`; GK by default). A term whose MCA form is
switched off (``dims``) is left out, not counted as zero. With a :class:`~skd_core.mca.LearnedTemperature`,
each tap's MCA forms attend at that tap's learned temperatures instead of the fixed one. With a
:class:`~skd_core.losses.distance.MedianBandwidth` (GK only), fitted at the first call, every term at
a tap -- ``D(S, T)`` and its MCA terms -- uses that tap's ``sigma``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..errors import ConfigError
from ..mca import CrossNetAttention, LearnedTemperature, Temperature
from .distance import GaussianKernelDistance, MedianBandwidth


class SKDFeatureLoss(nn.Module):
    """``forward(student, teacher)`` over the taps of two ``path -> B, C, H, W`` maps returns the parts
    of ``L_GK``: ``"feature"`` = sum D(S, T), and where enabled ``"channel"`` = alpha1 sum D(S_c, T)
    and ``"spatial"`` = alpha1 sum D(S_s, T); ``L_GK`` is the sum of the parts."""

    def __init__(
        self, distance: nn.Module, mca: CrossNetAttention, alpha1: float = 0.5,
        temperature: LearnedTemperature | None = None, bandwidth: MedianBandwidth | None = None,
    ) -> None:
        super().__init__()
        if bandwidth is not None and not isinstance(distance, GaussianKernelDistance):
            raise ConfigError(f"a per-tap GK bandwidth needs the GK distance, got {type(distance).__name__}")
        self.distance = distance
        self.mca = mca
        self.alpha1 = alpha1
        self.temperature = temperature
        self.bandwidth = bandwidth

    def _distance(self, x: torch.Tensor, teacher: torch.Tensor, path: str) -> torch.Tensor:
        """``D(x, T)`` at tap ``path`` (with that tap's ``sigma`` when bandwidths are per tap)."""
        return self.distance(x, teacher) if self.bandwidth is None else self.distance(x, teacher, self.bandwidth(path))

    def temperatures(self, path: str) -> dict[str, Temperature] | None:
        """Tap ``path``'s learned temperatures per form (``None``: the MCA's fixed one)."""
        return self.temperature(path) if self.temperature is not None else None

    def forward(
        self, student: Mapping[str, torch.Tensor], teacher: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        if set(student) != set(teacher) or not student:
            raise ConfigError(f"SKD loss needs the same non-empty taps, got {list(student)} and {list(teacher)}")
        if self.bandwidth is not None and not self.bandwidth.fitted:
            with torch.no_grad():
                self.bandwidth.fit({p: self.distance.sample_distance(student[p], t) for p, t in teacher.items()})
        parts: dict[str, torch.Tensor] = {}
        for path, t in teacher.items():
            s = student[path]
            terms = {"feature": self._distance(s, t, path)}
            for dim, attended in self.mca(s, t, self.temperatures(path)).items():
                terms[dim] = self.alpha1 * self._distance(attended, t, path)
            for name, value in terms.items():
                parts[name] = parts[name] + value if name in parts else value
        return parts
