"""Losses, one module per method's term: feature distances, the SKD feature loss, the contrastive
loss and the baselines (output KD, FitNet, attention transfer, FAKD)."""

from .at import at_loss, attention_map
from .contrastive import (
    CL_WEIGHTS,
    CONTRASTIVE_FORMS,
    TEACHER_EXTRACTOR_TAPS,
    VGG19_TAPS,
    ContrastiveLoss,
    TeacherExtractor,
    VGG19Features,
    info_nce,
)
from .distance import DISTANCES, GaussianKernelDistance, L1Distance, MedianBandwidth, MSEDistance, build_distance
from .fakd import fakd_loss
from .fitnet import fitnet_loss
from .output_kd import output_kd_loss
from .skd import SKDFeatureLoss

__all__ = [
    "CL_WEIGHTS", "CONTRASTIVE_FORMS", "DISTANCES", "TEACHER_EXTRACTOR_TAPS", "VGG19_TAPS", "ContrastiveLoss",
    "GaussianKernelDistance", "L1Distance", "MSEDistance", "MedianBandwidth", "SKDFeatureLoss", "TeacherExtractor",
    "VGG19Features", "at_loss", "attention_map", "build_distance", "fakd_loss", "fitnet_loss", "info_nce",
    "output_kd_loss",
]
