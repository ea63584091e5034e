"""Width adapters student -> teacher, sized by a one-batch shape probe.

Where a tap's student width ``C_S`` differs from the teacher's ``C_T``, a 1x1 convolution
(``C_S -> C_T``, with bias; *ours*: docs/design.md section 1.6) maps the student
feature into the teacher's space; where widths are equal the adapter is ``nn.Identity``. Spatial
sizes must already agree: adapters never resample.

Adapters are **training overhead**: they live in an :class:`Adapters` module held by the
distillation method, never inside the student, so every student parameter/MAC count excludes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ConfigError
from .taps import FeatureTaps, as_feature_map


@dataclass(frozen=True)
class TapShape:
    """Per-sample feature shapes ``(C, H, W)`` of one tap in the student and the teacher."""

    path: str
    student: tuple[int, int, int]
    teacher: tuple[int, int, int]


def _features(model: nn.Module, paths: Sequence[str], probe: torch.Tensor, who: str) -> dict[str, torch.Tensor]:
    was_training = model.training
    model.eval()
    try:
        with FeatureTaps(model, paths, name=who) as taps, torch.no_grad():
            _, features = taps.run(probe, stop_early=True)
    finally:
        model.train(was_training)
    return {p: as_feature_map(p, features[p], who) for p in paths}


def probe_shapes(
    student: nn.Module, teacher: nn.Module, paths: Sequence[str], probe: torch.Tensor
) -> list[TapShape]:
    """Run student and teacher once on ``probe`` (``B, C, H, W``; eval mode, no_grad, forward stopped
    after the last tap) and return each tap's shapes. Unequal spatial sizes raise ``ConfigError``."""
    s_feats = _features(student, paths, probe, "student")
    t_feats = _features(teacher, paths, probe, "teacher")
    shapes = []
    for path in paths:
        s, t = tuple(s_feats[path].shape[1:]), tuple(t_feats[path].shape[1:])
        if s[1:] != t[1:]:
            raise ConfigError(
                f"tap {path!r}: student feature is {s[1]}x{s[2]} but teacher feature is {t[1]}x{t[2]} "
                f"for a probe of shape {tuple(probe.shape)}; adapters map width only, so taps must "
                "have equal spatial size"
            )
        shapes.append(TapShape(path, s, t))
    return shapes


class Adapters(nn.Module):
    """One adapter per tap path: 1x1 conv ``C_S -> C_T`` where widths differ, identity otherwise.

    Submodule names are the tap paths with ``.`` written as ``/`` (module names cannot hold dots),
    so state_dict keys read e.g. ``layers.encoder_level1.weight``.
    """

    def __init__(self, shapes: Sequence[TapShape]) -> None:
        super().__init__()
        self.layers = nn.ModuleDict()
        for shape in shapes:
            c_s, c_t = shape.student[0], shape.teacher[0]
            layer = nn.Identity() if c_s == c_t else nn.Conv2d(c_s, c_t, kernel_size=1, bias=True)
            self.layers[shape.path.replace(".", "/")] = layer

    @classmethod
    def from_probe(
        cls, student: nn.Module, teacher: nn.Module, paths: Sequence[str], probe: torch.Tensor
    ) -> Adapters:
        """Adapters sized by :func:`probe_shapes`."""
        return cls(probe_shapes(student, teacher, paths, probe))

    def forward(self, path: str, feature: torch.Tensor) -> torch.Tensor:
        """The student ``feature`` (``B, C_S, H, W``) of tap ``path`` mapped to ``B, C_T, H, W``."""
        return self.layers[path.replace(".", "/")](feature)
