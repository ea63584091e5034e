"""Losses: feature distances, the SKD feature loss, the contrastive loss and the baselines."""

from .baselines import at_loss, attention_map, fakd_loss, fitnet_loss, output_kd_loss
from .contrastive import (
    CL_WEIGHTS,
    TEACHER_EXTRACTOR_TAPS,
    VGG19_TAPS,
    ContrastiveLoss,
    TeacherExtractor,
    VGG19Features,
)
from .distance import DISTANCES, GaussianKernelDistance, L1Distance, MSEDistance, build_distance
from .skd import SKDFeatureLoss

__all__ = [
    "CL_WEIGHTS", "DISTANCES", "TEACHER_EXTRACTOR_TAPS", "VGG19_TAPS", "ContrastiveLoss",
    "GaussianKernelDistance", "L1Distance", "MSEDistance", "SKDFeatureLoss", "TeacherExtractor",
    "VGG19Features", "at_loss", "attention_map", "build_distance", "fakd_loss", "fitnet_loss",
    "output_kd_loss",
]
