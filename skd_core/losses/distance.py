"""Feature distances ``D(x, y)`` for the SKD feature loss: Gaussian kernel, and L1 / MSE ablations.

Each distance takes two tensors of equal shape ``B, ...`` and returns a scalar: the mean over the
batch of a per-sample value. Registered by name in :data:`DISTANCES` (``gk``, ``l1``, ``mse``); a
factory is called with the options it needs (``sigma``, ``reduction``) and ignores the rest.

GK's bandwidth is a fixed ``sigma`` or, per tap, a :class:`MedianBandwidth` (the median heuristic,
*ours*): GK then takes each tap's ``sigma`` per call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from ..errors import ConfigError, unknown
from ..registry import Registry

GK_REDUCTIONS = ("mean", "sum")
#: the named (non-number) values of option ``sigma``
SIGMA_MODES = ("median",)
#: a median-heuristic ``sigma^2`` never goes below this (a median ``d`` of 0 would make GK 0/0)
MIN_SIGMA2 = 1e-12


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape:
        raise ConfigError(f"distance needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")


class GaussianKernelDistance(nn.Module):
    """``GK(x, y) = 1 - exp(-d(x, y) / (2 sigma^2))``, in [0, 1), exactly 0 at ``x == y``.

    ``d`` is the per-sample squared difference reduced over ``C, H, W`` by ``reduction``:
    ``"mean"`` (default, *ours*) or ``"sum"``. With ``"sum"``, d grows with ``C*H*W`` (about 4*10^5
    for independent unit-variance 48-channel 64x64 features), GK saturates at 1 and its gradient
    ``exp(-d/2sigma^2)/2sigma^2`` underflows to 0; the mean keeps ``d`` at the scale of one squared
    feature difference, where ``sigma`` is meaningful: it sets the distance ``d ~ 2 sigma^2`` beyond
    which GK saturates; below it GK is close to ``d / (2 sigma^2)``. Default ``sigma`` 1.0 (*ours*):
    the level outputs of freshly built Restormer-family models have std 0.1-0.4, so d starts near
    0.01-0.2, well inside the kernel. The batch is averaged after the kernel. ``sigma=None``: no
    bandwidth of its own; each call passes one (a tap's :class:`MedianBandwidth`).
    """

    def __init__(self, sigma: float | None = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        if sigma is not None and not sigma > 0:
            raise ConfigError(f"GK sigma must be > 0, got {sigma!r}")
        if reduction not in GK_REDUCTIONS:
            raise unknown("GK reduction", reduction, GK_REDUCTIONS)
        self.sigma = sigma
        self.reduction = reduction

    def sample_distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``d``: the squared difference of each sample reduced over ``C, H, W`` (``B``)."""
        _check_pair(x, y)
        sq = (x - y).square().flatten(1)
        return sq.mean(1) if self.reduction == "mean" else sq.sum(1)

    def forward(self, x: torch.Tensor, y: torch.Tensor, sigma: float | torch.Tensor | None = None) -> torch.Tensor:
        """GK averaged over the batch, with bandwidth ``sigma`` (a float or 0-dim tensor) if given,
        else this module's."""
        sigma = self.sigma if sigma is None else sigma
        if sigma is None:
            raise ConfigError("this GK has no sigma of its own: pass one per call")
        d = self.sample_distance(x, y)
        # 1 - exp(-a) as -expm1(-a): exact near 0, so GK(x, x) == 0 and small distances keep precision
        return (-torch.expm1(-d / (2 * sigma**2))).mean()

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, reduction={self.reduction!r}"


def _median(values: torch.Tensor) -> torch.Tensor:
    """The median of a 1-D tensor; for an even count the mean of the two middle values."""
    ordered = values.flatten().sort().values
    n = ordered.numel()
    return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2


class MedianBandwidth(nn.Module):
    """Per-tap GK bandwidths by the median heuristic (*ours*): :meth:`fit` sets, for every tap ``p``,
    ``sigma_p^2 = median_b d_p(b)``, the median over the batch's samples of GK's per-sample distance
    at that tap (:meth:`GaussianKernelDistance.sample_distance`, per its reduction; for an even
    batch the mean of the two middle values; at least :data:`MIN_SIGMA2`), so that the median sample
    sits at ``GK = 1 - exp(-1/2)`` when fitted. The SKD loss fits once, at its first call (step 0's
    batch). ``sigma`` (one per tap, feature units) and ``fitted`` are buffers: saved in the
    distiller's checkpoint, so a resumed run keeps step 0's values and never refits.
    """

    def __init__(self, taps: Sequence[str]) -> None:
        super().__init__()
        self.taps = tuple(taps)
        self.register_buffer("sigma", torch.ones(len(self.taps)))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit(self, distances: Mapping[str, torch.Tensor]) -> None:
        """``distances``: each tap's per-sample ``d`` (``B``) on one batch, taken in ``sigma``'s dtype."""
        median = torch.stack([_median(distances[p].to(self.sigma.dtype)) for p in self.taps])
        self.sigma.copy_(median.clamp_min(MIN_SIGMA2).sqrt())
        self.fitted.fill_(True)

    def forward(self, path: str) -> torch.Tensor:
        """Tap ``path``'s ``sigma`` (0-dim)."""
        if path not in self.taps:
            raise unknown("GK bandwidth tap", path, self.taps)
        return self.sigma[self.taps.index(path)]

    def values(self) -> dict[str, float]:
        """``{tap: sigma}``; empty until fitted."""
        return dict(zip(self.taps, self.sigma.tolist(), strict=True)) if self.fitted else {}

    def extra_repr(self) -> str:
        return f"taps={len(self.taps)}"


class L1Distance(nn.Module):
    """Mean absolute difference over all elements (``nn.L1Loss()``); an ablation of GK."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair(x, y)
        return (x - y).abs().mean()


class MSEDistance(nn.Module):
    """Mean squared difference over all elements (``nn.MSELoss()``); an ablation of GK."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair(x, y)
        return (x - y).square().mean()


DistanceFactory = Callable[..., nn.Module]
DISTANCES: Registry[DistanceFactory] = Registry("distance")
DISTANCES.register("gk", lambda sigma=1.0, reduction="mean", **_: GaussianKernelDistance(sigma, reduction))
DISTANCES.register("l1", lambda **_: L1Distance())
DISTANCES.register("mse", lambda **_: MSEDistance())


def build_distance(name: str, sigma: float | None = 1.0, reduction: str = "mean") -> nn.Module:
    """The distance registered as ``name``; ``sigma`` and ``reduction`` apply to ``gk`` only
    (``sigma=None``: given per call, e.g. by a :class:`MedianBandwidth`)."""
    return DISTANCES.get(name)(sigma=sigma, reduction=reduction)
