"""Data: the embedded default set, real benchmark folders, synthetic degradations, training crops.

Conventions: images are numpy float32 arrays, HWC, RGB, in [0, 1] (noisy inputs are not clipped);
training tensors are float32 CHW. Specs: ``embedded``, ``embedded:TASK``, ``folder:PATH``.
"""

from .crops import TrainCrops, dihedral, train_crops
from .datasets import DataSpec, FolderImages, FolderPairs, load_clean, load_pairs, parse_spec
from .degrade import DEGRADATIONS, RECIPE_VERSION, degrade, image_rng, line_kernel, trajectory_kernel
from .embedded import EMBEDDED, EmbeddedImage, embedded_images, load_embedded
from .fingerprint import data_fingerprint
from .folders import LAYOUTS, FilePair, Layout, detect_layout, find_pairs
from .images import image_size, read_image, to_float_rgb
from .padding import pad_to_multiple, unpad
from .pairs import CleanImage, DatasetError, ImagePair
from .tasks import TASKS, TaskInfo, get_task, list_tasks, register_task

__all__ = [
    "DEGRADATIONS", "EMBEDDED", "LAYOUTS", "RECIPE_VERSION", "TASKS", "CleanImage", "DataSpec",
    "DatasetError", "EmbeddedImage", "FilePair", "FolderImages", "FolderPairs", "ImagePair", "Layout",
    "TaskInfo", "TrainCrops", "data_fingerprint", "degrade", "detect_layout", "dihedral",
    "embedded_images", "find_pairs", "get_task", "image_rng", "image_size", "line_kernel", "list_tasks",
    "load_clean", "load_embedded", "load_pairs", "pad_to_multiple", "parse_spec", "read_image",
    "register_task", "to_float_rgb", "train_crops", "trajectory_kernel", "unpad",
]
