"""Multi-dimensional cross-net attention (MCA), docs/design.md section 1.

Student feature ``S`` and teacher feature ``T`` at one tap are ``B, C, H, W`` tensors, read as
``C x N`` matrices with ``N = H*W``. The teacher gives the queries, the student the keys and values:

- **channel**: ``S_c = softmax(T S^T / lambda) S``, a ``C_T x C_S`` map (softmax over student
  channels), like Restormer's transposed MDTA attention but across the two networks; result
  ``B, C_T, H, W``.
- **spatial**: ``S_s[:, n] = sum_m softmax_m(<t_n, s_m> / lambda) s_m`` (*ours*: the reading of
  ``S_f softmax(T_f^T S_f / lambda)`` with the softmax over student tokens); needs ``C_S == C_T``
  (use adapters); result ``B, C_S, H, W``. Computed with
  ``torch.nn.functional.scaled_dot_product_attention`` on ``B, 1, N, C`` tensors, which never
  materialises the ``N x N`` map. (On CPU the layout matters: torch 2.13 sends 3-D inputs, or
  inputs without a unit stride on ``C``, that need a gradient to its explicit math kernel --
  about 3 GiB instead of under 50 MiB for a forward+backward at N = 16384, C = 48.)

:func:`channel_weights` and :func:`spatial_weights` return the softmax weights themselves (the
``C_T x C_S`` map, and chosen rows of the ``N x N`` map without building the rest) for figures;
both share their logits with the attended forms above, so maps and loss cannot drift apart.

Readings the paper leaves open, each a named option (*ours*):

- ``normalize``: ``"l2"`` (default) L2-normalises the query and key rows along the contracted
  axis first -- over ``N`` for the channel form, over ``C`` for the spatial form -- exactly as
  Restormer's MDTA does before its ``C x C`` product, so logits are cosine similarities in
  [-1, 1] and ``lambda`` has the same meaning at every tap and width; values stay un-normalised.
  ``"none"`` uses raw inner products, the formula as printed (logits then scale with feature
  magnitude and ``N`` or ``C``, so the softmax saturates on real features).
- ``temperature``: ``lambda`` *divides* the logits, as the formula is printed. A positive float
  (fixed), or a 0-dim tensor: :class:`LearnedTemperature` holds one learnable ``lambda`` per tap
  and per form, ``exp`` of a parameter so it stays positive (MDTA, too, learns its temperature).
  Each form has its own default, by one stated rule (docs/design.md section 1.4): the largest value
  of the grid {1, 0.3, 0.1, 0.03, 0.01, 0.003} at which that form's maps of a trained teacher
  against the student are clearly non-uniform (normalised entropy at most 0.9) at every tap by the
  last training step. Channel, :data:`DEFAULT_TEMPERATURE` = 0.1 (*provisional*: 0.3 is not
  measured): 0.96-0.99 at 1.0 (cosine logits in [-1, 1] bound every row's max/min weight by
  ``e^2``), 0.53-0.68 at 0.1. Spatial, :data:`DEFAULT_SPATIAL_TEMPERATURE` = 0.01: a row spreads
  over ``N = H*W`` tokens, not ``C`` channels; at 0.1 and 0.03 the full-resolution taps end at
  0.96-0.99 and 0.94-0.95, at 0.01 every tap ends at 0.08-0.82 (``cpu`` denoise25 teacher,
  ``student-cpu``, 300 steps). These are SKD's defaults (``SKDOptions``); the functions and
  :class:`CrossNetAttention` used alone default to one ``lambda`` (0.1) for both forms. The
  paper's hint "temperature 1e-6" has no stated meaning; as a divisor of cosine logits it makes
  the softmax a hard arg-max, so it is not the default, but it can be set.

:func:`normalized_entropy` measures how far a map is from uniform (1) or one-hot (0); the SKD
method logs it per tap and form (``entropy/<tap>/<form>``) while training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F  # noqa: N812 -- the torch convention
from torch import nn

from .errors import ConfigError, unknown

MCA_DIMS = ("none", "channel", "spatial", "both")
#: the forms each ``dims`` value runs
MCA_FORMS = {"none": (), "channel": ("channel",), "spatial": ("spatial",), "both": ("channel", "spatial")}
NORMALIZATIONS = ("l2", "none")
SPATIAL_IMPLS = ("sdpa", "matmul")
DEFAULT_TEMPERATURE = 0.1
#: the spatial form's default lambda (rule and measurements: docs/design.md section 1.4)
DEFAULT_SPATIAL_TEMPERATURE = 0.01
#: the most query rows of the spatial map whose entropy is measured (evenly spaced tokens)
ENTROPY_QUERIES = 256

#: a fixed temperature (float) or a learned one (0-dim tensor, positive by construction)
Temperature = float | torch.Tensor


def _check_temperature(temperature: Temperature) -> None:
    if isinstance(temperature, torch.Tensor):
        if temperature.dim() != 0:
            raise ConfigError(f"an MCA temperature tensor must be 0-dim, got shape {tuple(temperature.shape)}")
        return  # a learned temperature is exp(parameter) > 0: not checked, so no device sync
    if not temperature > 0:
        raise ConfigError(f"MCA temperature must be > 0, got {temperature!r}")


def _check_pair(student: torch.Tensor, teacher: torch.Tensor, same_width: bool) -> None:
    if student.dim() != 4 or teacher.dim() != 4:
        raise ConfigError(f"MCA takes B, C, H, W features, got {tuple(student.shape)} and {tuple(teacher.shape)}")
    s_b, s_c, *s_hw = student.shape
    t_b, t_c, *t_hw = teacher.shape
    if s_b != t_b or s_hw != t_hw or (same_width and s_c != t_c):
        need = "equal B, C, H, W" if same_width else "equal B, H, W"
        raise ConfigError(
            f"MCA needs {need} for student and teacher features, got {tuple(student.shape)} and "
            f"{tuple(teacher.shape)} (map the student width with adapters first)"
        )


def _check_options(temperature: Temperature, normalize: str) -> None:
    _check_temperature(temperature)
    if normalize not in NORMALIZATIONS:
        raise unknown("MCA normalization", normalize, NORMALIZATIONS)


def channel_weights(
    student: torch.Tensor, teacher: torch.Tensor, temperature: Temperature = DEFAULT_TEMPERATURE,
    normalize: str = "l2",
) -> torch.Tensor:
    """The channel map ``softmax(T S^T / temperature)`` (softmax over student channels): student
    ``B, C_S, H, W`` and teacher ``B, C_T, H, W`` give ``B, C_T, C_S``; each row sums to 1."""
    _check_options(temperature, normalize)
    _check_pair(student, teacher, same_width=False)
    s = student.flatten(2)  # B, C_S, N
    t = teacher.flatten(2)  # B, C_T, N
    q, k = (F.normalize(t, dim=-1), F.normalize(s, dim=-1)) if normalize == "l2" else (t, s)
    return torch.softmax(q @ k.transpose(1, 2) / temperature, dim=-1)


def channel_attention(
    student: torch.Tensor, teacher: torch.Tensor, temperature: Temperature = DEFAULT_TEMPERATURE,
    normalize: str = "l2",
) -> torch.Tensor:
    """``S_c = softmax(T S^T / temperature) S``: student ``B, C_S, H, W`` and teacher ``B, C_T, H, W``
    give ``B, C_T, H, W``. ``normalize="l2"`` normalises each channel row over ``N`` first."""
    b, _, h, w = student.shape
    attn = channel_weights(student, teacher, temperature, normalize)  # B, C_T, C_S
    return (attn @ student.flatten(2)).reshape(b, -1, h, w)


def _tokens(
    student: torch.Tensor, teacher: torch.Tensor, temperature: Temperature, normalize: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries (teacher), keys and values (student) of the spatial form, each ``B, 1, N, C``."""
    _check_options(temperature, normalize)
    _check_pair(student, teacher, same_width=True)
    # B, 1, N, C (one head), contiguous: the fused CPU kernels need a unit stride on C
    s = student.flatten(2).transpose(1, 2).contiguous().unsqueeze(1)
    t = teacher.flatten(2).transpose(1, 2).contiguous().unsqueeze(1)
    q, k = (F.normalize(t, dim=-1), F.normalize(s, dim=-1)) if normalize == "l2" else (t, s)
    return q, k, s


def _token_softmax(q: torch.Tensor, k: torch.Tensor, temperature: Temperature) -> torch.Tensor:
    """``softmax_m(<q_n, k_m> / temperature)`` for the given query rows: ``B, 1, Q, N``."""
    return torch.softmax(q @ k.transpose(-2, -1) / temperature, dim=-1)


def spatial_attention(
    student: torch.Tensor, teacher: torch.Tensor, temperature: Temperature = DEFAULT_TEMPERATURE,
    normalize: str = "l2", impl: str = "sdpa",
) -> torch.Tensor:
    """``S_s[:, n] = sum_m softmax_m(<t_n, s_m> / temperature) s_m`` for student and teacher
    ``B, C, H, W`` (equal widths); returns ``B, C, H, W``. ``normalize="l2"`` normalises each token
    over ``C`` first. ``impl="sdpa"`` never builds the ``N x N`` map; ``"matmul"`` does (the explicit
    product, for reference and memory comparison only). SDPA's ``scale`` must be a float, so a
    tensor (learned) temperature divides the queries instead, and its gradient flows through them."""
    if impl not in SPATIAL_IMPLS:
        raise unknown("spatial MCA implementation", impl, SPATIAL_IMPLS)
    b, c, h, w = student.shape
    q, k, s = _tokens(student, teacher, temperature, normalize)
    if impl == "sdpa" and isinstance(temperature, torch.Tensor):
        out = F.scaled_dot_product_attention(q / temperature, k, s, scale=1.0)
    elif impl == "sdpa":
        out = F.scaled_dot_product_attention(q, k, s, scale=1.0 / temperature)
    else:
        out = _token_softmax(q, k, temperature) @ s  # B, 1, N, N map
    return out.squeeze(1).transpose(1, 2).reshape(b, c, h, w)


def spatial_weights(
    student: torch.Tensor, teacher: torch.Tensor, queries: Sequence[int],
    temperature: Temperature = DEFAULT_TEMPERATURE, normalize: str = "l2",
) -> torch.Tensor:
    """Rows ``queries`` (flat token indices ``n = y * W + x``) of the spatial map
    ``softmax_m(<t_n, s_m> / temperature)``, each reshaped to the feature's ``H x W``: student and
    teacher ``B, C, H, W`` (equal widths) give ``B, Q, H, W``, each map summing to 1. Costs
    ``Q x N`` logits; the ``N x N`` map is never built."""
    b, _, h, w = student.shape
    rows = list(queries)
    if not rows or not all(0 <= n < h * w for n in rows):
        raise ConfigError(f"spatial MCA query rows must be token indices in [0, {h * w}), got {rows}")
    q, k, _ = _tokens(student, teacher, temperature, normalize)
    return _token_softmax(q[:, :, rows], k, temperature).reshape(b, len(rows), h, w)


def attention_weights(
    student: torch.Tensor, teacher: torch.Tensor, queries: Sequence[int],
    temperature: Temperature = DEFAULT_TEMPERATURE, normalize: str = "l2",
) -> dict[str, torch.Tensor]:
    """Both forms' weights for (adapted) student and teacher ``B, C, H, W`` features of equal width:
    ``"channel"`` the ``B, C_T, C_S`` map of :func:`channel_weights`, ``"spatial"`` the
    ``B, Q, H, W`` rows of :func:`spatial_weights` for token indices ``queries``."""
    return {"channel": channel_weights(student, teacher, temperature, normalize),
            "spatial": spatial_weights(student, teacher, queries, temperature, normalize)}


def normalized_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Mean normalised entropy ``H(row) / log K`` of the rows (along the last axis, length ``K``) of
    an attention map, averaged over every other axis: 1 for uniform rows, 0 for one-hot rows
    (``0 log 0 = 0``); 0 when ``K = 1``. Computed in float32 at least; returns a 0-dim tensor."""
    k = weights.shape[-1]
    p = weights.float() if weights.dtype in (torch.float16, torch.bfloat16) else weights
    if k < 2:
        return p.new_zeros(())
    return (-torch.special.xlogy(p, p).sum(-1) / math.log(k)).mean()


def evenly_spaced(n: int, count: int) -> list[int]:
    """``min(n, count)`` indices spread evenly over ``range(n)``, first and last included."""
    return torch.linspace(0, n - 1, min(n, count)).round().long().unique().tolist()


class LearnedTemperature(nn.Module):
    """One learnable MCA temperature per tap and per form: ``lambda = exp(log_temperature)``, positive
    whatever the parameter (Adam then steps ``lambda`` multiplicatively), initialised at ``init``
    (one value for every form, or ``{form: value}``).

    ``log_temperature`` is a ``len(taps) x len(forms)`` parameter; ``forward(path)`` returns
    ``{form: 0-dim lambda}`` for that tap, :meth:`values` every ``"<tap>/<form>"`` as a float.
    """

    def __init__(
        self, taps: Sequence[str], forms: Sequence[str], init: float | Mapping[str, float] = DEFAULT_TEMPERATURE,
    ) -> None:
        super().__init__()
        self.taps, self.forms = tuple(taps), tuple(forms)
        inits = init if isinstance(init, Mapping) else dict.fromkeys(self.forms, init)
        missing = [f for f in self.forms if f not in inits]
        if missing:
            raise ConfigError(f"LearnedTemperature needs an initial lambda for forms {missing}")
        for form in self.forms:
            _check_temperature(inits[form])
        row = torch.tensor([math.log(inits[f]) for f in self.forms])
        self.log_temperature = nn.Parameter(row.repeat(len(self.taps), 1))

    def forward(self, path: str) -> dict[str, torch.Tensor]:
        if path not in self.taps:
            raise unknown("MCA temperature tap", path, self.taps)
        return dict(zip(self.forms, self.log_temperature[self.taps.index(path)].exp().unbind(), strict=True))

    def values(self) -> dict[str, float]:
        lam = self.log_temperature.detach().exp().tolist()
        return {f"{tap}/{form}": lam[i][j] for i, tap in enumerate(self.taps) for j, form in enumerate(self.forms)}

    def extra_repr(self) -> str:
        return f"taps={len(self.taps)}, forms={self.forms}"


class CrossNetAttention(nn.Module):
    """Channel and/or spatial MCA of a student feature with a teacher feature (no parameters).

    ``dims``: ``"none" | "channel" | "spatial" | "both"``. ``forward(student, teacher)`` returns a
    dict with the selected forms under ``"channel"`` and ``"spatial"`` (empty for ``"none"``).
    ``temperature`` is the fixed ``lambda`` of both forms unless ``spatial_temperature`` gives the
    spatial form its own (``None``: the same as ``temperature``; SKD passes its own default);
    every method also takes ``temperatures``, a per-form mapping (e.g. one tap's
    :class:`LearnedTemperature`) that overrides them for the forms it names.
    """

    def __init__(
        self, dims: str = "both", temperature: float = DEFAULT_TEMPERATURE, normalize: str = "l2",
        impl: str = "sdpa", spatial_temperature: float | None = None,
    ) -> None:
        super().__init__()
        if dims not in MCA_DIMS:
            raise unknown("MCA dims", dims, MCA_DIMS)
        if normalize not in NORMALIZATIONS:
            raise unknown("MCA normalization", normalize, NORMALIZATIONS)
        if impl not in SPATIAL_IMPLS:
            raise unknown("spatial MCA implementation", impl, SPATIAL_IMPLS)
        _check_temperature(temperature)
        if spatial_temperature is not None:
            _check_temperature(spatial_temperature)
        self.dims = dims
        self.temperature = temperature
        self.spatial_temperature = temperature if spatial_temperature is None else spatial_temperature
        self.normalize = normalize
        self.impl = impl

    @property
    def forms(self) -> tuple[str, ...]:
        """The forms ``dims`` runs, in the order ``forward`` returns them."""
        return MCA_FORMS[self.dims]

    def _lambda(self, form: str, temperatures: Mapping[str, Temperature] | None) -> Temperature:
        fixed = self.spatial_temperature if form == "spatial" else self.temperature
        return (temperatures or {}).get(form, fixed)

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, temperatures: Mapping[str, Temperature] | None = None
    ) -> dict[str, torch.Tensor]:
        out = {}
        if "channel" in self.forms:
            lam = self._lambda("channel", temperatures)
            out["channel"] = channel_attention(student, teacher, lam, self.normalize)
        if "spatial" in self.forms:
            lam = self._lambda("spatial", temperatures)
            out["spatial"] = spatial_attention(student, teacher, lam, self.normalize, self.impl)
        return out

    def weights(
        self, student: torch.Tensor, teacher: torch.Tensor, queries: Sequence[int],
        temperatures: Mapping[str, Temperature] | None = None,
    ) -> dict[str, torch.Tensor]:
        """:func:`attention_weights` at this module's temperatures and normalisation (both forms,
        whatever ``dims`` is)."""
        return {"channel": channel_weights(student, teacher, self._lambda("channel", temperatures), self.normalize),
                "spatial": spatial_weights(student, teacher, queries, self._lambda("spatial", temperatures),
                                           self.normalize)}

    def entropy(
        self, student: torch.Tensor, teacher: torch.Tensor, temperatures: Mapping[str, Temperature] | None = None,
        max_queries: int = ENTROPY_QUERIES,
    ) -> dict[str, torch.Tensor]:
        """:func:`normalized_entropy` of each form ``dims`` runs, at the loss's temperatures and
        normalisation, averaged over rows and the batch. The spatial rows are at most ``max_queries``
        :func:`evenly_spaced` query tokens (``Q x N`` logits; the ``N x N`` map is never built)."""
        out = {}
        if "channel" in self.forms:
            lam = self._lambda("channel", temperatures)
            out["channel"] = normalized_entropy(channel_weights(student, teacher, lam, self.normalize))
        if "spatial" in self.forms:
            rows = evenly_spaced(student.shape[2] * student.shape[3], max_queries)
            lam = self._lambda("spatial", temperatures)
            out["spatial"] = normalized_entropy(spatial_weights(student, teacher, rows, lam, self.normalize).flatten(2))
        return out

    def extra_repr(self) -> str:
        return (f"dims={self.dims!r}, temperature={self.temperature}, spatial_temperature={self.spatial_temperature}, "
                f"normalize={self.normalize!r}, impl={self.impl!r}")
