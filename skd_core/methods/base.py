"""The distillation machinery every method shares: the :class:`Step` a method sees, the
:class:`DistillMethod` base, the method registry and the :class:`Distiller` module.

``build_distiller(method, student, teacher, options, probe)`` returns a ``Distiller`` whose
``forward(lq, gt)`` computes the full training loss of one batch::

    L = |G - S_r|_1 + (the method's weighted terms)

with ``|.|_1`` the mean absolute difference (BasicSR ``L1Loss``).

The teacher is frozen (``requires_grad_(False)``), kept in eval mode even when the distiller
trains, run under ``torch.no_grad()``, and held outside the module tree: it is in neither
``parameters()`` nor ``state_dict()`` (``.to()`` still moves it). The student and the method's
trainable extras (adapters) are the distiller's parameters.

Each method lives in a module of its own (``skd_core.methods.<name>``) that registers it with
:func:`register_method`, naming its options class (:class:`~skd_core.methods.options.MethodOptions`);
a result's code identity hashes that module and what it imports, so editing one method touches
only its own results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 -- the torch convention
from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from ..taps import FeatureTaps, as_feature_map
from .options import MethodOptions


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

    def diagnostics(self, step: Step) -> dict[str, torch.Tensor]:
        """Named arrays worth keeping beside a scored cell, computed without gradients on one
        batch after training (default: none). Reports draw what they recognise by name, never by
        method: ``attention/<tap>/channel`` (``C_T x C_S`` weights), ``attention/<tap>/spatial``
        (``Q, H, W`` rows of the token map) and ``attention/<tap>/queries`` (``Q, 2`` row, column)."""
        return {}

    def monitor(self, step: Step) -> dict[str, float]:
        """Named scalars worth following over training (default: none), logged with the loss
        balance at :data:`~skd_core.train.loop.MONITOR_POINTS` steps, computed without gradients on
        that step's batch, e.g. ``entropy/<tap>/channel`` (normalised entropy of an attention map)."""
        return {}


MethodFactory = Callable[[nn.Module, "nn.Module | None", Any, "torch.Tensor | None"], DistillMethod]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: ``factory(student, teacher, options, probe) -> DistillMethod`` with
    ``options`` an instance of ``options_class``; ``module`` is where the factory is defined (the
    root of the method's code identity)."""

    name: str
    factory: MethodFactory
    options_class: type[MethodOptions] = MethodOptions
    needs_teacher: bool = True

    @property
    def module(self) -> str:
        return self.factory.__module__

    def options(self, given: Mapping[str, Any] | MethodOptions | None = None) -> MethodOptions:
        """``given`` validated against this method's options class (defaults filled in)."""
        if isinstance(given, self.options_class):
            return given
        if isinstance(given, MethodOptions):
            given = given.as_dict()
        return self.options_class.from_dict(given, where=f"options of method {self.name!r}")


METHODS: Registry[MethodSpec] = Registry("distillation method")


def register_method(name: str, factory: MethodFactory, options: type[MethodOptions] = MethodOptions,
                    needs_teacher: bool = True) -> MethodSpec:
    """Register ``factory(student, teacher, options, probe) -> DistillMethod`` as method ``name``;
    ``options`` is its dataclass of options (a :class:`MethodOptions` subclass; the base for none);
    ``needs_teacher=False`` lets it run with ``teacher=None`` (the factory then gets ``None``)."""
    if not (isinstance(options, type) and issubclass(options, MethodOptions)):
        raise ConfigError(f"method {name!r}: options must be a MethodOptions dataclass, got {options!r}")
    spec = MethodSpec(name, factory, options, needs_teacher)
    METHODS.register(name, spec)
    return spec


def need_probe(name: str, probe: torch.Tensor | None) -> torch.Tensor:
    """``probe``, or a :class:`ConfigError` saying that method ``name`` sizes its adapters from one."""
    if probe is None:
        raise ConfigError(f"method {name!r} sizes its adapters from a probe batch: pass probe=, e.g. "
                          "torch.zeros(1, 3, 64, 64) on the models' device")
    return probe


def device_of(module: nn.Module) -> torch.device:
    return next(module.parameters(), torch.empty(0)).device


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

    def step(self, lq: torch.Tensor, gt: torch.Tensor) -> Step:
        """The :class:`Step` of one batch: the student's output and features, and the teacher's."""
        student_out, s_feats = self._student_taps.run(lq)
        step = Step(lq, gt, student_out, {p: as_feature_map(p, f, "student") for p, f in s_feats.items()})
        if self._teacher_taps is not None:
            if self.teacher.training:
                self.teacher.eval()
            with torch.no_grad():
                step.teacher_out, t_feats = self._teacher_taps.run(
                    lq, stop_early=not self.method.needs_teacher_output)
            step.teacher_feats = {p: as_feature_map(p, f, "teacher") for p, f in t_feats.items()}
        return step

    def forward(self, lq: torch.Tensor, gt: torch.Tensor) -> DistillOutput:
        step = self.step(lq, gt)
        terms = {"pixel_l1": F.l1_loss(step.student_out, gt), **self.method.terms(step)}
        loss = torch.stack(list(terms.values())).sum()
        return DistillOutput(loss, {k: float(v.detach()) for k, v in terms.items()}, step.student_out)

    def balance(self, lq: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
        """The loss balance of one batch, for each term ``k`` of :meth:`forward` (weighted, as summed
        into the loss): ``value/k``; ``grad/k``, the L2 norm of its gradient with respect to the
        student's parameters (adapters and other extras excluded); ``cos/k``, the cosine between
        that gradient and the pixel-L1 term's (0 when either is zero); ``share/k`` =
        ``grad/k / sum_j grad/j`` (a lower bound of ``grad/k / |sum_j grad_j|``); plus the method's
        :meth:`DistillMethod.monitor` scalars. Leaves no gradient behind (``.grad`` untouched)."""
        params = [p for p in self.student.parameters() if p.requires_grad]
        step = self.step(lq, gt)
        terms = {"pixel_l1": F.l1_loss(step.student_out, gt), **self.method.terms(step)}
        grads = {}
        names = list(terms)
        for i, (name, value) in enumerate(terms.items()):
            parts = torch.autograd.grad(value, params, retain_graph=i < len(names) - 1, allow_unused=True)
            grads[name] = torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                                     for g, p in zip(parts, params, strict=True)])
        norms = {k: float(g.norm()) for k, g in grads.items()}
        total = sum(norms.values())
        ref = grads["pixel_l1"]
        out: dict[str, float] = {}
        for name in names:
            denom = norms[name] * norms["pixel_l1"]
            out[f"value/{name}"] = float(terms[name].detach())
            out[f"grad/{name}"] = norms[name]
            out[f"share/{name}"] = norms[name] / total if total > 0 else 0.0
            out[f"cos/{name}"] = float(grads[name].double() @ ref.double()) / denom if denom > 0 else 0.0
        with torch.no_grad():
            out.update({k: float(v) for k, v in self.method.monitor(step).items()})
        return out

    @torch.no_grad()
    def diagnostics(self, lq: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
        """The method's :meth:`DistillMethod.diagnostics` on one batch, in eval mode, on the CPU."""
        was_training = self.training
        self.eval()
        try:
            return {k: v.detach().cpu() for k, v in self.method.diagnostics(self.step(lq, gt)).items()}
        finally:
            self.train(was_training)

    def close(self) -> None:
        """Remove the feature hooks from the student and the teacher."""
        self._student_taps.clear()
        if self._teacher_taps is not None:
            self._teacher_taps.clear()


def build_distiller(
    method: str,
    student: nn.Module,
    teacher: nn.Module | None = None,
    options: Mapping[str, Any] | MethodOptions | None = None,
    probe: torch.Tensor | None = None,
) -> Distiller:
    """A :class:`Distiller` for registered ``method``. ``teacher`` is frozen in place
    (``requires_grad_(False)``, eval); ``options`` is plain data or the method's options dataclass,
    checked against the method's own options; ``probe`` is one input batch (``B, C, H, W`` on the
    models' device) used to size adapters, required by ``fitnet`` and ``skd``. Any ``nn.Module``
    works as student or teacher if the taps exist in both."""
    spec = METHODS.get(method)
    opts = spec.options(options)
    if spec.needs_teacher and teacher is None:
        raise ConfigError(f"method {method!r} needs a teacher")
    if teacher is not None:
        teacher.requires_grad_(False).eval()
    return Distiller(student, teacher, spec.factory(student, teacher, opts, probe))
