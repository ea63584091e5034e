"""Image-level contrastive loss ``L_CL``, its forms and its two feature extractors (docs/design.md
section 1, *ours*).

Anchor the student output ``S_r``, positive the teacher output ``T_r``, negative the degraded input
``X``; ``w = (1/32, 1/16, 1/8, 1/4, 1)`` from the shallowest to the deepest of five levels. Positive
and negative features carry no gradient; the anchor's do, through the frozen extractor into the
student. ``|.|_1`` is the mean absolute difference over ``B, C, H, W`` (``nn.L1Loss()``). Forms
(:data:`CONTRASTIVE_FORMS`, option ``contrastive_form``):

- ``ratio``: ``sum_k w_k |phi_k(S_r) - phi_k(T_r)|_1 / (|phi_k(S_r) - phi_k(X)|_1 + eps)``, the ratio
  losses of AECR-Net and CSD, ``eps = 1e-7`` (AECR-Net's value).
- ``positive``: ``sum_k w_k |phi_k(S_r) - phi_k(T_r)|_1``, the ratio's numerator alone: no negative
  (``phi(X)`` is not computed). The ratio's gradient scales with ``1 / denominator`` and pushes
  ``S_r`` away from ``X`` (on the ``cpu`` profile it dominates the gradient and drags outputs toward
  a colour cast); this form has no such push.
- ``infonce``: ``sum_k w_k InfoNCE_k`` with in-batch negatives (:func:`info_nce`): each level is
  global-average-pooled to a ``C_k`` vector and L2-normalised; sample ``i``'s logits are
  ``cos(a_i, p_j) / tau`` for every ``j`` in the batch plus ``cos(a_i, n_i) / tau`` (its own degraded
  input, one extra negative); cross-entropy with target ``j = i``, averaged over the batch.
  ``tau`` = :data:`INFONCE_TAU` 0.1 by default (option ``infonce_tau``).

:class:`ContrastiveLoss` defaults to ``ratio`` (the published form); SKD's default is ``positive``
(``SKDOptions.contrastive_form``), chosen by the rule and the measurement of docs/design.md
section 1.8: the ratio form's gradient opposed reconstruction (cosine -0.31) at 1.5x its norm.

Extractors ``phi`` (callables ``B, 3, H, W -> list of B, C_k, H_k, W_k``):

- ``teacher`` (default, offline): the frozen teacher's outputs at ``patch_embed``,
  ``encoder_level1..3`` and ``latent`` (*ours*: the five encoder depths of Restormer, matching
  VGG's five stages), read by forward hooks; the forward stops after the last one.
- ``vgg19``: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 of VGG19 (torchvision layout, input
  normalised with the ImageNet mean/std torchvision's weights expect), weights from a local
  torchvision ``vgg19`` state_dict file. Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812 -- the torch convention
from torch import nn

from ..errors import ConfigError, unknown
from ..taps import FeatureTaps, as_feature_map, resolve

CL_WEIGHTS: tuple[float, ...] = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
CL_EPS = 1e-7
CONTRASTIVE_FORMS = ("ratio", "positive", "infonce")
INFONCE_TAU = 0.1
TEACHER_EXTRACTOR_TAPS: tuple[str, ...] = (
    "patch_embed", "encoder_level1", "encoder_level2", "encoder_level3", "latent",
)
#: index in torchvision's ``vgg19().features`` of the ReLU after conv k_1, k = 1..5
VGG19_TAPS: dict[str, int] = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Extractor = Callable[[torch.Tensor], list[torch.Tensor]]


class TeacherExtractor:
    """``phi`` from a frozen teacher's intermediate outputs at ``paths`` (shallow to deep).

    A plain callable, not an ``nn.Module``, so holding the teacher adds nothing to any
    ``parameters()`` or ``state_dict()``. Paths are checked here; hooks exist only during a call.
    """

    def __init__(self, teacher: nn.Module, paths: Sequence[str] = TEACHER_EXTRACTOR_TAPS) -> None:
        self.teacher = teacher
        self.paths = tuple(paths)
        for path in self.paths:
            resolve(teacher, path, "teacher (contrastive extractor)")

    def __call__(self, image: torch.Tensor) -> list[torch.Tensor]:
        with FeatureTaps(self.teacher, self.paths) as taps:
            _, features = taps.run(image, stop_early=True)
        return [as_feature_map(p, features[p], "teacher") for p in self.paths]


class VGG19Features(nn.Module):
    """VGG19 ``features[0..29]`` in torchvision's layout (``features.N.weight``), so a torchvision
    ``vgg19`` state_dict loads unchanged. Input ``B, 3, H, W`` RGB in [0, 1]; returns the
    relu1_1 ... relu5_1 activations."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_c = 3
        for v in _VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_c, v, kernel_size=3, padding=1), nn.ReLU()]
                in_c = v
        self.features = nn.Sequential(*layers)  # ends with relu5_1, index 29
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._taps = set(VGG19_TAPS.values())

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = (image - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._taps:
                out.append(x)
        return out

    @classmethod
    def from_file(cls, path: str | Path) -> VGG19Features:
        """Load ``features.*`` from a torchvision ``vgg19`` state_dict file (``torch.load`` with
        ``weights_only=True``; extra keys such as ``classifier.*`` and ``features.30+`` are ignored),
        frozen and in eval mode. A missing or unfitting file raises ``ConfigError`` naming it."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"VGG19 weights file not found: {path}. The vgg19 extractor needs a local torchvision "
                "vgg19 state_dict (e.g. vgg19-dcbb9e9d.pth); nothing is downloaded. Use extractor "
                "'teacher' to run offline without it."
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # any unreadable file is the same user error
            raise ConfigError(f"cannot read VGG19 weights {path}: {err}") from err
        model = cls()
        own = model.state_dict()
        missing = [k for k in own if k not in state]
        bad = [f"{k}: {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
               if k in state and state[k].shape != v.shape]
        if missing or bad:
            raise ConfigError(
                f"{path} is not a torchvision vgg19 state_dict: missing keys {missing[:5]}, shape mismatches {bad[:5]}"
            )
        model.load_state_dict({k: state[k] for k in own})
        return model.requires_grad_(False).eval()


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE of one level's ``B, C, ...`` features: each pooled over its spatial axes and
    L2-normalised; logits ``cos(a_i, p_j) / tau`` for all ``j`` and ``cos(a_i, n_i) / tau``
    (``B x (B + 1)``); cross-entropy with target ``j = i``, averaged over the batch."""
    a, p, n = (F.normalize(f.flatten(2).mean(2), dim=1) for f in (anchor, positive, negative))
    logits = torch.cat([a @ p.T, (a * n).sum(1, keepdim=True)], dim=1) / tau
    return F.cross_entropy(logits, torch.arange(a.shape[0], device=a.device))


class ContrastiveLoss:
    """``L_CL(S_r, T_r, X)`` of ``form`` with extractor ``phi``, weights ``w`` (one per level), the
    ratio's ``eps`` and InfoNCE's ``tau``.

    A plain callable: the extractor's modules are frozen and belong to nobody's state_dict.
    """

    def __init__(self, extractor: Extractor, weights: Sequence[float] = CL_WEIGHTS, eps: float = CL_EPS,
                 form: str = "ratio", tau: float = INFONCE_TAU) -> None:
        if form not in CONTRASTIVE_FORMS:
            raise unknown("contrastive form", form, CONTRASTIVE_FORMS)
        if not tau > 0:
            raise ConfigError(f"InfoNCE tau must be > 0, got {tau!r}")
        self.extractor = extractor
        self.weights = tuple(weights)
        self.eps = eps
        self.form = form
        self.tau = tau

    @property
    def needs_negative(self) -> bool:
        """Whether the form uses ``phi(X)`` (all but ``positive``)."""
        return self.form != "positive"

    def _level(self, w: float, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor | None) -> torch.Tensor:
        """One level's term, weighted by ``w``."""
        if self.form == "ratio":
            return w * (a - p).abs().mean() / ((a - n).abs().mean() + self.eps)
        if self.form == "positive":
            return w * (a - p).abs().mean()
        return w * info_nce(a, p, n, self.tau)

    def __call__(self, student_out: torch.Tensor, teacher_out: torch.Tensor, degraded: torch.Tensor,
                 negative: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """``negative``: ``phi(degraded)`` when the caller already has it (the distiller taps the
        teacher's forward on the degraded input at the extractor's paths); computed here otherwise,
        and not at all by the ``positive`` form."""
        anchor = self.extractor(student_out)
        with torch.no_grad():
            positive = self.extractor(teacher_out)
            if self.needs_negative:
                negatives = list(negative) if negative is not None else self.extractor(degraded)
            else:
                negatives = [None] * len(positive)
        if not len(anchor) == len(positive) == len(negatives) == len(self.weights):
            raise ConfigError(f"contrastive loss has {len(self.weights)} weights but the extractor gave "
                              f"{len(anchor)} levels")
        loss = student_out.new_zeros(())
        for w, a, p, n in zip(self.weights, anchor, positive, negatives, strict=True):
            loss = loss + self._level(w, a, p, n)
        return loss
