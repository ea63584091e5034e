"""``skd``: Soft Knowledge Distillation with multi-dimensional cross-net attention,
``+ alpha2 * L_GK + alpha3 * L_CL`` (docs/design.md section 1).

Terms: ``skd_feature``, ``skd_channel``, ``skd_spatial`` (the parts of ``alpha2 * L_GK``, MCA parts
only where enabled) and ``contrastive``. Defaults (*ours* where the paper is silent):
alpha1..3 = 0.5 / 0.1 / 0.1 (the sibling paper's values); GK bandwidth ``sigma="median"`` (per tap
by the median heuristic on step 0's batch, :class:`~skd_core.losses.distance.MedianBandwidth`; a
number fixes it); MCA on both dims, L2-normalised logits divided by ``temperature`` 0.1 (channel)
and ``spatial_temperature`` 0.01 (spatial), by the rule in :mod:`skd_core.mca`; taps
:data:`~skd_core.taps.DEFAULT_TAPS`; contrastive loss on with the offline
``teacher`` extractor in the ``positive`` form: by the rule of docs/design.md section 1.8 (every
enabled term keeps >= 5 % of the gradient, none exceeds 3x the reconstruction's), which the
``ratio`` and ``infonce`` forms fail on the ``cpu`` teacher.

``temperature="learned"`` gives every tap and MCA form its own learnable temperature
(:class:`~skd_core.mca.LearnedTemperature`, initialised at ``temperature_init`` for the channel form
and ``spatial_temperature`` for the spatial form). Like the
adapters, the learned temperatures belong to this method, not the student: the optimizer steps them
with the student, the distiller's checkpoint saves them, and a record counts them in
``adapter_params``, never in the student's parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..adapters import Adapters
from ..errors import ConfigError
from ..losses.contrastive import (
    CL_WEIGHTS,
    CONTRASTIVE_FORMS,
    INFONCE_TAU,
    TEACHER_EXTRACTOR_TAPS,
    VGG19_TAPS,
    ContrastiveLoss,
    TeacherExtractor,
    VGG19Features,
)
from ..losses.distance import DISTANCES, GK_REDUCTIONS, SIGMA_MODES, MedianBandwidth, build_distance
from ..losses.skd import SKDFeatureLoss
from ..mca import (
    DEFAULT_SPATIAL_TEMPERATURE,
    DEFAULT_TEMPERATURE,
    MCA_DIMS,
    NORMALIZATIONS,
    CrossNetAttention,
    LearnedTemperature,
)
from ..taps import DEFAULT_TAPS
from .base import DistillMethod, Step, device_of, need_probe, register_method
from .options import MethodOptions, option

EXTRACTORS = ("teacher", "vgg19")
#: the named (non-number) values of option ``temperature``
TEMPERATURE_MODES = ("learned",)
#: the named values of option ``spatial_temperature``
SPATIAL_TEMPERATURE_MODES = ("same",)
#: diagnostics: the most taps whose attention is kept, and the spatial map's query tokens as
#: (row, column) fractions of the tap's feature map
DIAGNOSTIC_TAPS = 3
QUERY_POINTS = ((0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75))


@dataclass(frozen=True)
class SKDOptions(MethodOptions):
    """SKD's knobs; cross-field rules: extractor ``vgg19`` needs ``vgg_weights`` and takes no
    ``extractor_taps``; ``cl_weights`` has one weight per extractor level."""

    alpha1: float = option(0.5, help="weight of the MCA terms inside L_GK")
    alpha2: float = option(0.1, help="weight of L_GK in the total")
    alpha3: float = option(0.1, help="weight of L_CL in the total")
    sigma: float | str = option(
        "median", positive=True, choices=SIGMA_MODES,
        help="GK bandwidth: a fixed number > 0, or 'median': per tap, sigma^2 = the median over step 0's batch "
             "of the per-sample d (kept in checkpoints, never refitted on resume); distance gk only")
    gk_reduction: str = option("mean", choices=GK_REDUCTIONS, help="GK's d over C, H, W")
    distance: str = option("gk", choices=DISTANCES.names, help="D in L_GK")
    temperature: float | str = option(
        DEFAULT_TEMPERATURE, positive=True, choices=TEMPERATURE_MODES,
        help="MCA lambda dividing the logits: a fixed number > 0 (default 0.1), or 'learned': one "
             "learnable lambda per tap and MCA form, kept positive as exp(log lambda)")
    temperature_init: float = option(DEFAULT_TEMPERATURE, positive=True,
                                     help="initial channel lambda of temperature 'learned' (ignored when fixed)")
    spatial_temperature: float | str = option(
        DEFAULT_SPATIAL_TEMPERATURE, positive=True, choices=SPATIAL_TEMPERATURE_MODES,
        help="the spatial form's lambda: a number > 0 (default 0.01: a spatial row has N = H*W entries, far more "
             "than a channel row's C, so it needs a smaller lambda to leave uniform), or 'same': the channel's; "
             "with temperature 'learned', the spatial form's initial lambda")
    mca_dims: str = option("both", choices=MCA_DIMS)
    mca_normalize: str = option("l2", choices=NORMALIZATIONS)
    taps: tuple[str, ...] | None = option(None, help="dotted module paths in both models; None: DEFAULT_TAPS")
    contrastive: bool = option(True, help="add alpha3 * L_CL")
    contrastive_form: str = option(
        "positive", choices=CONTRASTIVE_FORMS,
        help="L_CL's form: 'ratio' (AECR-Net/CSD: |phi(S)-phi(T)|_1 / |phi(S)-phi(X)|_1), 'positive' (the numerator "
             "alone, no negative) or 'infonce' (pooled, L2-normalised levels; in-batch teacher negatives plus phi(X))")
    infonce_tau: float = option(INFONCE_TAU, positive=True, help="temperature of contrastive_form 'infonce'")
    extractor: str = option("teacher", choices=EXTRACTORS, help="phi of L_CL")
    extractor_taps: tuple[str, ...] | None = option(None, help="teacher extractor paths; None: TEACHER_EXTRACTOR_TAPS")
    cl_weights: tuple[float, ...] = option(CL_WEIGHTS, help="w_k, shallow to deep, one per extractor level")
    vgg_weights: str | None = option(None, help="local torchvision vgg19 state_dict file (extractor vgg19)")

    def __post_init__(self) -> None:
        super().__post_init__()
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


class SKD(DistillMethod):
    """``alpha2 * L_GK + alpha3 * L_CL``."""

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

    @torch.no_grad()
    def monitor(self, step: Step) -> dict[str, float]:
        """At every tap where MCA runs, ``entropy/<tap>/<form>``: the normalised entropy of each form's
        map (:meth:`~skd_core.mca.CrossNetAttention.entropy`; 1 uniform, 0 one-hot) at the loss's
        temperatures and normalisation, averaged over rows and the batch, the spatial form over at
        most :data:`~skd_core.mca.ENTROPY_QUERIES` evenly spaced query rows; with a learned
        temperature also ``temperature/<tap>/<form>``; with ``sigma="median"``, once fitted,
        ``sigma/<tap>``."""
        loss, out = self.feature_loss, {}
        for path in self.taps if loss.mca.forms else ():
            s, t = self.adapters(path, step.student_feats[path]), step.teacher_feats[path]
            out.update({f"entropy/{path}/{form}": float(v)
                        for form, v in loss.mca.entropy(s, t, loss.temperatures(path)).items()})
        if loss.temperature is not None:
            out.update({f"temperature/{k}": v for k, v in loss.temperature.values().items()})
        if loss.bandwidth is not None:
            out.update({f"sigma/{k}": v for k, v in loss.bandwidth.values().items()})
        return out

    def diagnostics(self, step: Step) -> dict[str, torch.Tensor]:
        """Cross-net attention of the first sample at up to :data:`DIAGNOSTIC_TAPS` taps (evenly
        spread, first and last included), at the loss's temperature and normalisation: the channel
        map and the spatial rows of the :data:`QUERY_POINTS` tokens (none when MCA is off); with a
        learned temperature also every ``temperature/<tap>/<form>`` (0-dim)."""
        if self.feature_loss.mca.dims == "none":
            return {}
        index = np.unique(np.round(np.linspace(0, len(self.taps) - 1, min(DIAGNOSTIC_TAPS, len(self.taps)))))
        out = {}
        for path in (self.taps[int(i)] for i in index):
            s, t = self.adapters(path, step.student_feats[path][:1]), step.teacher_feats[path][:1]
            h, w = t.shape[2:]
            points = [(min(int(fy * h), h - 1), min(int(fx * w), w - 1)) for fy, fx in QUERY_POINTS]
            weights = self.feature_loss.mca.weights(s, t, [row * w + col for row, col in points],
                                                    self.feature_loss.temperatures(path))
            out[f"attention/{path}/channel"] = weights["channel"][0]
            out[f"attention/{path}/spatial"] = weights["spatial"][0]
            out[f"attention/{path}/queries"] = torch.tensor(points)
        if self.feature_loss.temperature is not None:
            out.update({f"temperature/{k}": torch.tensor(v) for k, v in self.feature_loss.temperature.values().items()})
        return out


def build(student: nn.Module, teacher: nn.Module | None, options: SKDOptions, probe: torch.Tensor | None) -> SKD:
    o = options
    taps = o.taps or DEFAULT_TAPS
    adapters = Adapters.from_probe(student, teacher, taps, need_probe("skd", probe))
    learned = o.temperature == "learned"
    channel = o.temperature_init if learned else o.temperature
    spatial = channel if o.spatial_temperature == "same" else o.spatial_temperature
    mca = CrossNetAttention(o.mca_dims, channel, o.mca_normalize, spatial_temperature=spatial)
    inits = {"channel": channel, "spatial": spatial}
    temperature = None
    if learned and mca.forms:
        temperature = LearnedTemperature(taps, mca.forms, {f: inits[f] for f in mca.forms})
    sigma = None if o.sigma == "median" else o.sigma  # median: per tap, fitted on step 0's batch
    distance = build_distance(o.distance, sigma, o.gk_reduction)
    bandwidth = MedianBandwidth(taps) if sigma is None and o.distance == "gk" else None
    feature_loss = SKDFeatureLoss(distance, mca, o.alpha1, temperature, bandwidth)
    contrastive, frozen, negative_taps = None, [], ()
    if o.contrastive:
        if o.extractor == "vgg19":
            extractor = VGG19Features.from_file(Path(o.vgg_weights)).to(device_of(student))
            frozen = [extractor]
        else:
            extractor = TeacherExtractor(teacher, o.extractor_taps or TEACHER_EXTRACTOR_TAPS)
        contrastive = ContrastiveLoss(extractor, o.cl_weights, form=o.contrastive_form, tau=o.infonce_tau)
        if isinstance(extractor, TeacherExtractor) and contrastive.needs_negative:
            negative_taps = extractor.paths
    return SKD(taps, adapters, feature_loss, o.alpha2, contrastive, o.alpha3, frozen, negative_taps)


register_method("skd", build, SKDOptions)
