"""Named model presets (timm/NAFNet style): one constructor, many sizes, and user registration.

Every preset is a factory plus keyword arguments; ``build_model(name, **overrides)`` merges the
overrides. Students are the Restormer family made narrower (``dim``) and shallower (``num_blocks``,
``num_refinement_blocks``); heads stay [1, 2, 4, 8] as in the official model. Any ``nn.Module``
factory can be registered with :func:`register_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..registry import Registry
from .restormer import Restormer

FULL_DEPTH = {"num_blocks": [4, 6, 6, 8], "num_refinement_blocks": 4}
HALF_DEPTH = {"num_blocks": [2, 3, 3, 4], "num_refinement_blocks": 2}
SWEEP_DIMS = (16, 24, 32, 40, 48)


@dataclass(frozen=True)
class ModelPreset:
    """A named way to build a model: ``factory(**kwargs)``."""

    name: str
    factory: Callable[..., nn.Module]
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    role: str = "any"  # "teacher", "student" or "any": a hint for listings, not a restriction

    def build(self, **overrides: Any) -> nn.Module:
        return self.factory(**{**self.kwargs, **overrides})


MODELS: Registry[ModelPreset] = Registry("model preset")


def register_model(
    name: str, factory: Callable[..., nn.Module], description: str = "", role: str = "any", **kwargs: Any
) -> ModelPreset:
    """Register ``factory(**kwargs)`` as preset ``name`` (any ``nn.Module`` mapping B,3,H,W -> B,3,H,W)."""
    preset = ModelPreset(name, factory, dict(kwargs), description, role)
    MODELS.register(name, preset)
    return preset


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Build preset ``name``; keyword ``overrides`` replace the preset's constructor arguments."""
    return MODELS.get(name).build(**overrides)


def list_models() -> list[ModelPreset]:
    return [MODELS.get(n) for n in MODELS.names()]


def _restormer(name: str, description: str, role: str, **kwargs: Any) -> None:
    register_model(name, Restormer, description, role, **kwargs)


_restormer("restormer", "official Restormer (dim 48, [4,6,6,8], 4 refinement, WithBias LN)", "teacher")
_restormer("restormer-biasfree", "official Restormer, BiasFree LayerNorm (real denoising)", "teacher",
           LayerNorm_type="BiasFree")
_restormer("student-dckd", "public DCKD student: dim 24, [2,3,3,4], 2 refinement", "student",
           dim=24, **HALF_DEPTH)
for _dim in SWEEP_DIMS:
    _restormer(f"student-w{_dim}-full", f"size sweep: dim {_dim}, full depth [4,6,6,8], 4 refinement",
               "student", dim=_dim, **FULL_DEPTH)
    _restormer(f"student-w{_dim}-half", f"size sweep: dim {_dim}, half depth [2,3,3,4], 2 refinement",
               "student", dim=_dim, **HALF_DEPTH)
# Reduced-scale presets for the `smoke` (tests, CI) and `cpu` (laptop, 2 cores) profiles.
# the cpu teacher is deep where it is cheap: the 1/4 and 1/8 levels (blocks [.., 4, 6]) add 1.1 M
# parameters for about 15 % more time per step than [2, 2, 2, 2]; 3.9x the default student's parameters
_restormer("teacher-cpu", "cpu profile teacher: dim 16, [2,3,4,6], 1 refinement", "teacher",
           dim=16, num_blocks=[2, 3, 4, 6], num_refinement_blocks=1)
_restormer("student-cpu", "cpu profile student: dim 12, [1,1,1,2], 1 refinement", "student",
           dim=12, num_blocks=[1, 1, 1, 2], num_refinement_blocks=1, heads=[1, 2, 2, 4])
for _dim in (8, 16):
    _restormer(f"student-cpu-w{_dim}", f"cpu profile size sweep: dim {_dim}, [1,1,1,2], 1 refinement", "student",
               dim=_dim, num_blocks=[1, 1, 1, 2], num_refinement_blocks=1, heads=[1, 2, 2, 4])
_restormer("teacher-smoke", "smoke profile teacher: dim 8, [1,1,1,2], 1 refinement", "teacher",
           dim=8, num_blocks=[1, 1, 1, 2], num_refinement_blocks=1)
_restormer("student-smoke", "smoke profile student: dim 4, [1,1,1,1], 1 refinement", "student",
           dim=4, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2])
