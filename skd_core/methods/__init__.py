"""Distillation methods, one module each (all on the identical student; docs/design.md section 1):

=============  ===============================================================================
``scratch``    ``|G - S_r|_1`` only; needs no teacher
``output_kd``  ``+ output_kd_weight * |S_r - T_r|_1``
``fitnet``     ``+ fitnet_weight * sum_taps mean (A(S) - T)^2`` (adapted student features)
``at``         ``+ at_weight * sum_taps mean (a_S - a_T)^2`` (normalised ``sum_c F^2`` maps)
``fakd``       ``+ fakd_weight * sum_taps mean |A_S - A_T|`` (spatial affinities; low-res taps)
``skd``        ``+ alpha2 * L_GK + alpha3 * L_CL`` (SKD with MCA and the contrastive loss)
=============  ===============================================================================

Importing this package registers the built-in methods; :mod:`skd_core.methods.base` has the shared
machinery and :func:`register_method` for new ones, each with its own options dataclass.
"""

# registration order = the table's order (listings, benchmarks)
from . import scratch, output_kd, fitnet, at, fakd, skd  # noqa: I001  # isort: skip
from .at import ATOptions
from .base import (
    METHODS,
    Distiller,
    DistillMethod,
    DistillOutput,
    MethodSpec,
    Step,
    build_distiller,
    register_method,
)
from .fakd import FAKD_TAPS, FAKDOptions
from .fitnet import FitNetOptions
from .options import MethodOptions, option
from .output_kd import OutputKDOptions
from .skd import SKDOptions

__all__ = [
    "FAKD_TAPS", "METHODS", "ATOptions", "DistillMethod", "DistillOutput", "Distiller", "FAKDOptions",
    "FitNetOptions", "MethodOptions", "MethodSpec", "OutputKDOptions", "SKDOptions", "Step", "at",
    "build_distiller", "fakd", "fitnet", "option", "output_kd", "register_method", "scratch", "skd",
]
