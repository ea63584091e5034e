"""MACs and FLOPs at a stated input size, through fvcore with our own handle for every op we use.

Units and conventions (docs/design.md section 3):

- **MACs** (multiply-accumulates) = convolution + matrix-product MACs: ``aten::_convolution``
  (``B * prod(weight.shape) * prod(out spatial)``, bias ignored), ``matmul``/``mm``/``bmm``/
  ``addmm``/``baddbmm``/``linear``/``einsum`` (``batch * M * K * N``), and
  ``aten::scaled_dot_product_attention`` counted as its two products,
  ``batch * heads * Sq * Sk * (D + Dv)``, so the explicit ``softmax(q k^T) v`` and SDPA give the
  same number. **FLOPs = 2 x MACs**.
- **conv-only MACs**: the convolution part alone, the figure published tables call "FLOPs"
  (Restormer's "140 G" is conv-only MACs from a module-hook counter).
- **element ops**: elementwise, activation, softmax, reduction, normalisation and resampling work,
  counted as tensor elements processed (one per element, whatever the op) and reported per
  category, never added to MACs. fvcore's default norm/upsample handles (which *would* add to its
  total) are replaced by ours.
- Pure layout ops (reshape, cat, pixel_(un)shuffle, padding, ...) do no arithmetic and are
  explicitly ignored. Any other op without a handle is returned in ``uncounted_ops`` (name ->
  occurrences), never silently dropped.

Cross-check: ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per MAC, convolutions and matrix
products only) run on a ``meta``-device copy of the model, where SDPA decomposes into two ``bmm``
and is counted; on CPU tensors torch 2.13 counts SDPA as 0, which is why we do not use it there.
"""

from __future__ import annotations

import copy
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from math import prod
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

with warnings.catch_warnings():
    # fvcore.nn scripts its focal losses at import time; torch 2.13 deprecates torch.jit.script.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=DeprecationWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import conv_flop_count, einsum_flop_jit, get_shape

#: version of the handle table below; bump when a formula changes
HANDLES_VERSION = 1
COUNTER = f"fvcore {version('fvcore')} FlopCountAnalysis + skd_core handles v{HANDLES_VERSION}"
TORCH_COUNTER = f"torch {torch.__version__} utils.flop_counter.FlopCounterMode on meta tensors"

#: categories whose counts are MACs; every other category is element ops
MAC_CATEGORIES = ("conv", "matmul", "attention")
ELEMENT_CATEGORIES = ("elementwise", "activation", "softmax", "reduction", "normalisation", "resampling")

Handle = Callable[[list[Any], list[Any]], Counter]


def _matmul_macs(a: Sequence[int], b: Sequence[int]) -> int:
    """MACs of ``a @ b`` with numpy broadcasting (1-D operands promoted as torch does)."""
    a = [1, *a] if len(a) == 1 else list(a)
    b = [*b, 1] if len(b) == 1 else list(b)
    batch = torch.broadcast_shapes(torch.Size(a[:-2]), torch.Size(b[:-2]))
    return prod(batch) * a[-2] * a[-1] * b[-1]


def _conv(inputs: list[Any], outputs: list[Any]) -> Counter:
    x, w, out = get_shape(inputs[0]), get_shape(inputs[1]), get_shape(outputs[0])
    return Counter({"conv": conv_flop_count(x, w, out, transposed=bool(inputs[6].toIValue()))})


def _matmul(inputs: list[Any], outputs: list[Any]) -> Counter:
    return Counter({"matmul": _matmul_macs(get_shape(inputs[0]), get_shape(inputs[1]))})


def _addmm(inputs: list[Any], outputs: list[Any]) -> Counter:  # addmm / baddbmm: bias + a @ b
    return Counter({"matmul": _matmul_macs(get_shape(inputs[1]), get_shape(inputs[2]))})


def _linear(inputs: list[Any], outputs: list[Any]) -> Counter:
    x, w = get_shape(inputs[0]), get_shape(inputs[1])
    return Counter({"matmul": prod(x) * w[0]})


def _einsum(inputs: list[Any], outputs: list[Any]) -> Counter:
    return Counter({"matmul": int(einsum_flop_jit(inputs, outputs))})


def _sdpa(inputs: list[Any], outputs: list[Any]) -> Counter:
    """``softmax(q k^T * scale) v``: MACs of both products; the softmax as element ops."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    out = get_shape(outputs[0])
    batch_heads, sq, sk = prod(out[:-2]), q[-2], k[-2]
    return Counter({"attention": batch_heads * sq * sk * (q[-1] + v[-1]), "softmax": batch_heads * sq * sk})


def _elements(category: str, of: str = "output") -> Handle:
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        return Counter({category: prod(get_shape(outputs[0] if of == "output" else inputs[0]))})

    return handle


_ELEMENTWISE = (
    "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "sqrt", "rsqrt", "pow", "square", "exp",
    "expm1", "log", "log1p", "neg", "abs", "reciprocal", "clamp", "clamp_", "clamp_min", "clamp_max", "maximum",
    "minimum", "where",
)
_ACTIVATION = ("gelu", "relu", "relu_", "silu", "sigmoid", "tanh", "leaky_relu", "hardtanh", "softplus", "prelu")
_SOFTMAX = ("softmax", "log_softmax")
_REDUCTION = ("mean", "var", "std", "sum", "linalg_vector_norm", "norm", "frobenius_norm", "amax", "amin")
_NORMALISATION = ("layer_norm", "group_norm", "instance_norm", "batch_norm")
_RESAMPLING_OUT = ("upsample_nearest2d", "upsample_bilinear2d", "upsample_bicubic2d", "grid_sampler")
_RESAMPLING_IN = ("adaptive_avg_pool2d", "avg_pool2d", "max_pool2d")
#: no arithmetic: layout and copies (fvcore already ignores reshape/cat/permute/...)
LAYOUT_OPS = (
    "pixel_shuffle", "pixel_unshuffle", "expand_as", "repeat", "unflatten", "view_as", "reshape_as",
    "reflection_pad2d", "replication_pad2d", "pad", "clone", "roll", "flip",
)

HANDLES: dict[str, Handle] = {
    "aten::_convolution": _conv,
    **{f"aten::{op}": _matmul for op in ("matmul", "mm", "bmm")},
    "aten::addmm": _addmm,
    "aten::baddbmm": _addmm,
    "aten::linear": _linear,
    "aten::einsum": _einsum,
    "aten::scaled_dot_product_attention": _sdpa,
    **{f"aten::{op}": _elements("elementwise") for op in _ELEMENTWISE},
    **{f"aten::{op}": _elements("activation") for op in _ACTIVATION},
    **{f"aten::{op}": _elements("softmax", of="input") for op in _SOFTMAX},
    **{f"aten::{op}": _elements("reduction", of="input") for op in _REDUCTION},
    **{f"aten::{op}": _elements("normalisation", of="input") for op in _NORMALISATION},
    **{f"aten::{op}": _elements("resampling") for op in _RESAMPLING_OUT},
    **{f"aten::{op}": _elements("resampling", of="input") for op in _RESAMPLING_IN},
}


@dataclass(frozen=True)
class MacReport:
    """Complexity of one forward pass at ``input_shape`` (``B, C, H, W``).

    ``macs`` = ``conv_macs + matmul_macs + attention_macs`` (multiply-accumulates);
    ``flops`` = 2 x ``macs``. ``element_ops``: category -> tensor elements processed (not MACs).
    ``uncounted_ops``: aten op -> occurrences of ops without a handle (counted as 0).
    ``by_module``: module path -> MACs (ancestors include their descendants), when requested.
    ``torch_flops``: the independent ``FlopCounterMode`` count (FLOPs), when requested.
    """

    input_shape: tuple[int, ...]
    conv_macs: int
    matmul_macs: int
    attention_macs: int
    element_ops: dict[str, int]
    uncounted_ops: dict[str, int]
    counter: str = COUNTER
    by_module: dict[str, int] | None = None
    torch_flops: int | None = None
    torch_counter: str = TORCH_COUNTER

    @property
    def macs(self) -> int:
        """Convolution + matrix-product + attention-product MACs."""
        return self.conv_macs + self.matmul_macs + self.attention_macs

    @property
    def flops(self) -> int:
        """FLOPs = 2 x MACs (one multiply and one add per MAC)."""
        return 2 * self.macs

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict with ``macs`` and ``flops`` included."""
        return {"macs": self.macs, "flops": self.flops, **asdict(self)}


def count_macs(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    by_module_depth: int | None = None,
    cross_check: bool = False,
) -> MacReport:
    """Trace ``model`` in eval mode on zeros of ``input_shape`` and count its MACs (see module doc).

    ``by_module_depth``: also return MACs per module whose dotted path has at most this many parts
    (1 = direct children; the root is ``""``). ``cross_check``: also count FLOPs with
    ``torch.utils.flop_counter`` on a meta-device copy (``MacReport.torch_flops``).
    """
    param = next(model.parameters(), None)
    x = torch.zeros(*input_shape, device=param.device if param is not None else "cpu",
                    dtype=param.dtype if param is not None and param.is_floating_point() else torch.float32)
    analysis = FlopCountAnalysis(model, x)
    analysis.set_op_handle(**HANDLES)
    analysis.set_op_handle(**{f"aten::{op}": None for op in LAYOUT_OPS})
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            by_op = analysis.by_operator()
            per_module = analysis.by_module_and_operator() if by_module_depth is not None else None
    finally:
        model.train(was_training)

    by_module = None
    if per_module is not None:
        by_module = {
            name: sum(ops[c] for c in MAC_CATEGORIES)
            for name, ops in per_module.items()
            if (name == "" or name.count(".") < by_module_depth) and any(ops[c] for c in MAC_CATEGORIES)
        }
    return MacReport(
        input_shape=tuple(int(s) for s in input_shape),
        conv_macs=int(by_op["conv"]),
        matmul_macs=int(by_op["matmul"]),
        attention_macs=int(by_op["attention"]),
        element_ops={c: int(by_op[c]) for c in ELEMENT_CATEGORIES if by_op[c]},
        uncounted_ops=dict(sorted(analysis.unsupported_ops().items())),
        by_module=by_module,
        torch_flops=torch_flop_count(model, input_shape) if cross_check else None,
    )


def torch_flop_count(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs (2 per MAC; convolutions and matrix products) by ``torch.utils.flop_counter`` on a
    ``meta``-device copy of ``model`` in eval mode: no arithmetic runs, and SDPA is counted through
    its math decomposition (on CPU tensors torch 2.13 counts SDPA as 0)."""
    meta_model = copy.deepcopy(model).to("meta").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta_model(torch.zeros(*input_shape, device="meta"))
    return int(counter.get_total_flops())
