"""Distillation methods: validated options, a method registry and the :class:`Distiller` module.

``build_distiller(method, student, teacher, options, probe)`` returns a ``Distiller`` whose
``forward(lq, gt)`` computes the full training loss of one batch::

    L = |G - S_r|_1 + (the method's weighted terms)

with ``|.|_1`` the mean absolute difference (BasicSR ``L1Loss``). Methods (all on the identical
student; DESIGN section 1):

=============  ===============================================================================
``scratch``    ``|G - S_r|_1`` only; needs no teacher
``output_kd``  ``+ output_kd_weight * |S_r - T_r|_1``
``fitnet``     ``+ fitnet_weight * sum_taps mean (A(S) - T)^2`` (adapted student features)
``at``         ``+ at_weight * sum_taps mean (a_S - a_T)^2`` (normalised ``sum_c F^2`` maps)
``fakd``       ``+ fakd_weight * sum_taps mean |A_S - A_T|`` (spatial affinities; low-res taps)
``skd``        ``+ alpha2 * L_GK + alpha3 * L_CL`` (SKD with MCA and the contrastive loss)
=============  ===============================================================================

The teacher is frozen (``requires_grad_(False)``), kept in eval mode even when the distiller
trains, run under ``torch.no_grad()``, and held outside the module tree: it is in neither
``parameters()`` nor ``state_dict()`` (``.to()`` still moves it). The student and the adapters are
the distiller's parameters. New methods are added with :func:`register_method`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 -- the torch convention
from torch import nn

from .adapters import Adapters
from .errors import ConfigError, check_keys, unknown
from .losses.baselines import at_loss, fakd_loss, fitnet_loss, output_kd_loss
from .losses.contrastive import (
    CL_WEIGHTS,
    TEACHER_EXTRACTOR_TAPS,
    VGG19_TAPS,
    ContrastiveLoss,
    TeacherExtractor,
    VGG19Features,
)
from .losses.distance import DISTANCES, GK_REDUCTIONS, build_distance
from .losses.skd import SKDFeatureLoss
from .mca import MCA_DIMS, NORMALIZATIONS, CrossNetAttention
from .registry import Registry
from .taps import DEFAULT_TAPS, FeatureTaps, as_feature_map

#: FAKD's default taps (*ours*): the H/4 and H/8 levels, where the ``N x N`` affinity is cheap
#: (N = 1024 and 256 for a 128x128 crop); full-resolution taps work but cost O(N^2 C).
FAKD_TAPS: tuple[str, ...] = ("encoder_level3", "latent", "decoder_level3")
EXTRACTORS = ("teacher", "vgg19")


@dataclass(frozen=True)
class DistillOptions:
    """Every knob of every method, validated on construction; a method reads the ones it uses.

    Defaults (*ours* where DESIGN marks it): alpha1..3 = 0.5 / 0.1 / 0.1 (the sibling paper's
    values); GK ``sigma`` 1.0 with ``d`` the per-sample mean squared difference; MCA on both dims,
    L2-normalised logits divided by ``temperature`` 1.0 (see :mod:`skd_core.mca`); taps ``None``
    meaning the method's default (:data:`~skd_core.taps.DEFAULT_TAPS`, FAKD :data:`FAKD_TAPS`);
    contrastive loss on with the offline ``teacher`` extractor; AT weight 1000 (Zagoruyko &
    Komodakis' beta for this mean form), other baseline weights 1.0.
    """

    alpha1: float = 0.5  # weight of the MCA terms inside L_GK
    alpha2: float = 0.1  # weight of L_GK in the total
    alpha3: float = 0.1  # weight of L_CL in the total
    sigma: float = 1.0  # GK bandwidth
    gk_reduction: str = "mean"  # GK's d over C, H, W: "mean" | "sum"
    distance: str = "gk"  # D in L_GK: "gk" | "l1" | "mse"
    temperature: float = 1.0  # MCA lambda (divides the logits)
    mca_dims: str = "both"  # "none" | "channel" | "spatial" | "both"
    mca_normalize: str = "l2"  # "l2" | "none"
    taps: tuple[str, ...] | None = None  # dotted module paths in both models; None: method default
    contrastive: bool = True  # add alpha3 * L_CL (skd)
    extractor: str = "teacher"  # phi of L_CL: "teacher" | "vgg19"
    extractor_taps: tuple[str, ...] | None = None  # teacher extractor paths; None: TEACHER_EXTRACTOR_TAPS
    cl_weights: tuple[float, ...] = CL_WEIGHTS  # w_k, shallow to deep, one per extractor level
    vgg_weights: str | None = None  # local torchvision vgg19 state_dict file (extractor "vgg19")
    output_kd_weight: float = 1.0
    fitnet_weight: float = 1.0
    at_weight: float = 1000.0
    fakd_weight: float = 1.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "float":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ConfigError(f"option {f.name!r} must be a finite number, got {value!r}")
                positive = f.name in ("sigma", "temperature")
                if value < 0 or (positive and value == 0):
                    raise ConfigError(f"option {f.name!r} must be {'> 0' if positive else '>= 0'}, got {value!r}")
                object.__setattr__(self, f.name, float(value))
        choices = {"gk_reduction": GK_REDUCTIONS, "distance": DISTANCES.names(), "mca_dims": MCA_DIMS,
                   "mca_normalize": NORMALIZATIONS, "extractor": EXTRACTORS}
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise unknown(f"value of option {name!r}", str(getattr(self, name)), valid)
        if not isinstance(self.contrastive, bool):
            raise ConfigError(f"option 'contrastive' must be true or false, got {self.contrastive!r}")
        for name in ("taps", "extractor_taps"):
            value = getattr(self, name)
            if value is not None:
                paths_ok = isinstance(value, (list, tuple)) and value and all(isinstance(p, str) and p for p in value)
                if not paths_ok:
                    raise ConfigError(f"option {name!r} must be a non-empty list of dotted module paths, got {value!r}")
                object.__setattr__(self, name, tuple(value))
        weights = self.cl_weights
        if not isinstance(weights, (list, tuple)) or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in weights
        ):
            raise ConfigError(f"option 'cl_weights' must be a list of numbers >= 0, got {weights!r}")
        object.__setattr__(self, "cl_weights", tuple(float(w) for w in weights))
        if self.extractor == "vgg19":
            if self.vgg_weights is None:
                raise ConfigError("extractor 'vgg19' needs option 'vgg_weights' (a local torchvision vgg19 "
                                  "state_dict file); use extractor 'teacher' to run without one")
            if self.extractor_taps is not None:
                raise ConfigError("option 'extractor_taps' applies to extractor 'teacher' only")
        levels = len(VGG19_TAPS) if self.extractor == "vgg19" else len(self.extractor_taps or TEACHER_EXTRACTOR_TAPS)
        if len(self.cl_weights) != levels:
            raise ConfigError(f"option 'cl_weights' needs {levels} weights (one per {self.extractor} "
                              f"extractor level), got {len(self.cl_weights)}")

    @classmethod
    def from_dict(cls, options: Mapping[str, Any] | None = None) -> DistillOptions:
        """Options from plain data (e.g. a YAML block); an unknown key raises ``UnknownNameError``
        listing the valid keys, closest first."""
        options = dict(options or {})
        check_keys(options, [f.name for f in dataclasses.fields(cls)], "distillation option", "options")
        return cls(**options)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (tuples as lists), e.g. for a result record."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass
class Step:
    """What a method sees of one batch: inputs, the student's output and tapped features (with
    autograd history) and the teacher's (``None`` / empty when not needed; no history)."""

    lq: torch.Tensor
    gt: torch.Tensor
    student_out: torch.Tensor
    student_feats: dict[str, torch.Tensor]
    teacher_out: torch.Tensor | None = None
    teacher_feats: dict[str, torch.Tensor] = field(default_factory=dict)


class DistillMethod(nn.Module):
    """Base of a method: its trainable extras (adapters) are its submodules; :meth:`terms` gives
    its weighted loss terms beyond the pixel L1.

    The distiller runs the teacher when the method has ``teacher_taps`` or
    ``needs_teacher_output``; without the latter the teacher's forward stops after its last tap.
    """

    needs_teacher_output: bool = False

    def __init__(self, student_taps: Sequence[str] = (), teacher_taps: Sequence[str] = ()) -> None:
        super().__init__()
        self.student_taps = tuple(student_taps)
        self.teacher_taps = tuple(teacher_taps)

    def terms(self, step: Step) -> dict[str, torch.Tensor]:
        """Named scalar terms, already weighted; the distiller adds them to the pixel L1."""
        raise NotImplementedError

    def frozen_modules(self) -> list[nn.Module]:
        """Frozen modules the method uses but does not own (e.g. VGG19); moved with the distiller."""
        return []


MethodFactory = Callable[[nn.Module, "nn.Module | None", DistillOptions, "torch.Tensor | None"], DistillMethod]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: ``factory(student, teacher, options, probe) -> DistillMethod``."""

    name: str
    factory: MethodFactory
    needs_teacher: bool = True


METHODS: Registry[MethodSpec] = Registry("distillation method")


def register_method(name: str, factory: MethodFactory, needs_teacher: bool = True) -> MethodSpec:
    """Register ``factory(student, teacher, options, probe) -> DistillMethod`` as method ``name``;
    ``needs_teacher=False`` lets it run with ``teacher=None`` (the factory then gets ``None``)."""
    spec = MethodSpec(name, factory, needs_teacher)
    METHODS.register(name, spec)
    return spec


def _need_probe(name: str, probe: torch.Tensor | None) -> torch.Tensor:
    if probe is None:
        raise ConfigError(f"method {name!r} sizes its adapters from a probe batch: pass probe=, e.g. "
                          "torch.zeros(1, 3, 64, 64) on the models' device")
    return probe


class Scratch(DistillMethod):
    """Ground-truth L1 only."""

    def terms(self, step: Step) -> dict[str, torch.Tensor]:
        return {}


class OutputKD(DistillMethod):
    """``weight * |S_r - T_r|_1``."""

    needs_teacher_output = True

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = weight

    def terms(self, step: Step) -> dict[str, torch.Tensor]:
        return {"output_kd": self.weight * output_kd_loss(step.student_out, step.teacher_out)}


class FitNet(DistillMethod):
    """``weight * sum_taps mean (A(S) - T)^2``."""

    def __init__(self, taps: Sequence[str], adapters: Adapters, weight: float) -> None:
        super().__init__(taps, taps)
        self.adapters = adapters
        self.weight = weight

    def terms(self, step: Step) -> dict[str, torch.Tensor]:
        loss = sum(fitnet_loss(self.adapters(p, step.student_feats[p]), step.teacher_feats[p])
                   for p in self.teacher_taps)
        return {"fitnet": self.weight * loss}


class AttentionTransfer(DistillMethod):
    """``weight * sum_taps mean (a_S - a_T)^2``; no adapters."""

    def __init__(self, taps: Sequence[str], weight: float) -> None:
        super().__init__(taps, taps)
        self.weight = weight

    def terms(self, step: Step) -> dict[str, torch.Tensor]:
        loss = sum(at_loss(step.student_feats[p], step.teacher_feats[p]) for p in self.teacher_taps)
        return {"at": self.weight * loss}


class FAKD(DistillMethod):
    """``weight * sum_taps mean |A_S - A_T|``; no adapters."""

    def __init__(self, taps: Sequence[str], weight: float) -> None:
        super().__init__(taps, taps)
        self.weight = weight

    def terms(self, step: Step) -> dict[str, torch.Tensor]:
        loss = sum(fakd_loss(step.student_feats[p], step.teacher_feats[p]) for p in self.teacher_taps)
        return {"fakd": self.weight * loss}


class SKD(DistillMethod):
    """``alpha2 * L_GK + alpha3 * L_CL``. Terms: ``skd_feature``, ``skd_channel``, ``skd_spatial``
    (the parts of ``alpha2 * L_GK``, MCA parts only where enabled) and ``contrastive``."""

    def __init__(
        self, taps: Sequence[str], adapters: Adapters, feature_loss: SKDFeatureLoss, alpha2: float,
        contrastive: ContrastiveLoss | None, alpha3: float, frozen: Sequence[nn.Module] = (),
        negative_taps: Sequence[str] = (),
    ) -> None:
        # negative_taps: the teacher extractor's paths; the teacher's forward on the degraded input
        # already computes phi(X) there, so it is tapped once instead of run a second time
        super().__init__(taps, tuple(dict.fromkeys([*taps, *negative_taps])))
        self.taps = tuple(taps)
        self.negative_taps = tuple(negative_taps)
        self.adapters = adapters
        self.feature_loss = feature_loss
        self.alpha2 = alpha2
        self.contrastive = contrastive  # a plain callable: its frozen extractor is not registered
        self.alpha3 = alpha3
        self.needs_teacher_output = contrastive is not None
        self._frozen = list(frozen)

    def terms(self, step: Step) -> dict[str, torch.Tensor]:
        adapted = {p: self.adapters(p, step.student_feats[p]) for p in self.taps}
        parts = self.feature_loss(adapted, {p: step.teacher_feats[p] for p in self.taps})
        terms = {f"skd_{name}": self.alpha2 * value for name, value in parts.items()}
        if self.contrastive is not None:
            negative = [step.teacher_feats[p] for p in self.negative_taps] or None
            terms["contrastive"] = self.alpha3 * self.contrastive(step.student_out, step.teacher_out, step.lq,
                                                                  negative)
        return terms

    def frozen_modules(self) -> list[nn.Module]:
        return list(self._frozen)


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters(), torch.empty(0)).device


def _scratch(
    student: nn.Module, teacher: nn.Module | None, o: DistillOptions, probe: torch.Tensor | None
) -> Scratch:
    return Scratch()


def _output_kd(
    student: nn.Module, teacher: nn.Module | None, o: DistillOptions, probe: torch.Tensor | None
) -> OutputKD:
    return OutputKD(o.output_kd_weight)


def _fitnet(
    student: nn.Module, teacher: nn.Module | None, o: DistillOptions, probe: torch.Tensor | None
) -> FitNet:
    taps = o.taps or DEFAULT_TAPS
    return FitNet(taps, Adapters.from_probe(student, teacher, taps, _need_probe("fitnet", probe)), o.fitnet_weight)


def _at(
    student: nn.Module, teacher: nn.Module | None, o: DistillOptions, probe: torch.Tensor | None
) -> AttentionTransfer:
    return AttentionTransfer(o.taps or DEFAULT_TAPS, o.at_weight)


def _fakd(
    student: nn.Module, teacher: nn.Module | None, o: DistillOptions, probe: torch.Tensor | None
) -> FAKD:
    return FAKD(o.taps or FAKD_TAPS, o.fakd_weight)


def _skd(
    student: nn.Module, teacher: nn.Module | None, o: DistillOptions, probe: torch.Tensor | None
) -> SKD:
    taps = o.taps or DEFAULT_TAPS
    adapters = Adapters.from_probe(student, teacher, taps, _need_probe("skd", probe))
    feature_loss = SKDFeatureLoss(
        build_distance(o.distance, o.sigma, o.gk_reduction),
        CrossNetAttention(o.mca_dims, o.temperature, o.mca_normalize),
        o.alpha1,
    )
    contrastive, frozen, negative_taps = None, [], ()
    if o.contrastive:
        if o.extractor == "vgg19":
            vgg = VGG19Features.from_file(Path(o.vgg_weights)).to(_device_of(student))
            contrastive, frozen = ContrastiveLoss(vgg, o.cl_weights), [vgg]
        else:
            extractor = TeacherExtractor(teacher, o.extractor_taps or TEACHER_EXTRACTOR_TAPS)
            contrastive, negative_taps = ContrastiveLoss(extractor, o.cl_weights), extractor.paths
    return SKD(taps, adapters, feature_loss, o.alpha2, contrastive, o.alpha3, frozen, negative_taps)


register_method("scratch", _scratch, needs_teacher=False)
register_method("output_kd", _output_kd)
register_method("fitnet", _fitnet)
register_method("at", _at)
register_method("fakd", _fakd)
register_method("skd", _skd)


@dataclass
class DistillOutput:
    """One batch: ``loss`` (scalar with autograd history), ``terms`` (each weighted term by name as a
    float, ``pixel_l1`` first; they sum to ``loss``), ``output`` (the student's restored image)."""

    loss: torch.Tensor
    terms: dict[str, float]
    output: torch.Tensor


class Distiller(nn.Module):
    """Student + method (adapters) as one trainable module, with a frozen teacher beside it.

    ``forward(lq, gt)``: ``lq`` the degraded batch ``B, 3, H, W`` and ``gt`` its ground truth, both
    in [0, 1]; returns :class:`DistillOutput`. Hooks stay on the student and teacher until
    :meth:`close`.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module | None, method: DistillMethod) -> None:
        super().__init__()
        self.student = student
        self.method = method
        uses_teacher = bool(method.teacher_taps) or method.needs_teacher_output
        if uses_teacher and teacher is None:
            raise ConfigError(f"method {type(method).__name__} needs a teacher")
        # Kept out of nn.Module's registry: not in parameters(), state_dict() or children().
        object.__setattr__(self, "teacher", teacher if uses_teacher else None)
        self._student_taps = FeatureTaps(student, method.student_taps, name="student")
        self._teacher_taps = FeatureTaps(teacher, method.teacher_taps, name="teacher") if uses_teacher else None
        self.train(self.training)

    def _frozen(self) -> list[nn.Module]:
        return ([self.teacher] if self.teacher is not None else []) + self.method.frozen_modules()

    def train(self, mode: bool = True) -> Distiller:
        """Set the student and adapters to ``mode``; the teacher and other frozen modules stay in eval."""
        super().train(mode)
        for module in self._frozen():
            module.eval()
        return self

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> Distiller:
        # .to(), .cuda(), .half() ... move the frozen teacher (and extractor) with the distiller
        super()._apply(fn, recurse)
        for module in self._frozen():
            module._apply(fn, recurse)
        return self

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The student's and the adapters' parameters (what the optimizer steps)."""
        return (p for p in self.parameters() if p.requires_grad)

    def forward(self, lq: torch.Tensor, gt: torch.Tensor) -> DistillOutput:
        student_out, s_feats = self._student_taps.run(lq)
        step = Step(lq, gt, student_out, {p: as_feature_map(p, f, "student") for p, f in s_feats.items()})
        if self._teacher_taps is not None:
            if self.teacher.training:
                self.teacher.eval()
            with torch.no_grad():
                step.teacher_out, t_feats = self._teacher_taps.run(
                    lq, stop_early=not self.method.needs_teacher_output)
            step.teacher_feats = {p: as_feature_map(p, f, "teacher") for p, f in t_feats.items()}
        terms = {"pixel_l1": F.l1_loss(student_out, gt), **self.method.terms(step)}
        loss = torch.stack(list(terms.values())).sum()
        return DistillOutput(loss, {k: float(v.detach()) for k, v in terms.items()}, student_out)

    def close(self) -> None:
        """Remove the feature hooks from the student and the teacher."""
        self._student_taps.clear()
        if self._teacher_taps is not None:
            self._teacher_taps.clear()


def build_distiller(
    method: str,
    student: nn.Module,
    teacher: nn.Module | None = None,
    options: Mapping[str, Any] | DistillOptions | None = None,
    probe: torch.Tensor | None = None,
) -> Distiller:
    """A :class:`Distiller` for registered ``method``. ``teacher`` is frozen in place
    (``requires_grad_(False)``, eval); ``options`` is a plain dict or :class:`DistillOptions`;
    ``probe`` is one input batch (``B, C, H, W`` on the models' device) used to size adapters,
    required by ``fitnet`` and ``skd``. Any ``nn.Module`` works as student or teacher if the taps
    exist in both."""
    spec = METHODS.get(method)
    opts = options if isinstance(options, DistillOptions) else DistillOptions.from_dict(options)
    if spec.needs_teacher and teacher is None:
        raise ConfigError(f"method {method!r} needs a teacher")
    if teacher is not None:
        teacher.requires_grad_(False).eval()
    return Distiller(student, teacher, spec.factory(student, teacher, opts, probe))
