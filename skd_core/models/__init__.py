"""Models: the Restormer teacher/student family, named presets and checkpoint loading."""

from .checkpoint import CheckpointError, check_fits, load_checkpoint, read_state_dict
from .presets import MODELS, ModelPreset, build_model, list_models, register_model
from .restormer import Restormer

__all__ = [
    "MODELS", "CheckpointError", "ModelPreset", "Restormer", "build_model", "check_fits",
    "list_models", "load_checkpoint", "read_state_dict", "register_model",
]
