"""Whole-image evaluation: pad to a multiple of 8, restore, crop back, score with the task's convention.

Scores follow :mod:`skd_core.metrics` (BasicSR semantics: clamp to [0, 1], uint8 quantisation,
float64, peak 255). The task decides the colour space (``y`` for deraining, ``rgb`` otherwise)
and ``crop_border``. ``max_side`` > 0 centre-crops each pair to at most that side (a multiple of
8) first, for quick validation; the crop is recorded with the scores. An image too small to score
(under SSIM's 11-pixel window after cropping) is a :class:`DatasetError` naming its file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..data import DatasetError, ImagePair, TaskInfo, pad_to_multiple, unpad
from ..metrics import SSIM_WINDOW, psnr_ssim, quantize


@dataclass
class EvalResult:
    """Mean and per-image scores; ``input_*`` score the degraded input against the ground truth."""

    psnr: float
    ssim: float
    input_psnr: float
    input_ssim: float
    per_image: list[dict[str, float | str]]
    color: str
    crop_border: int
    max_side: int
    #: the kept images as evaluated (``name -> (lq, gt, output)``, uint8 after the scoring's
    #: quantisation); not part of :meth:`to_dict`
    kept: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "kept"}


def centre_crop(image: np.ndarray, max_side: int) -> np.ndarray:
    """Centre crop of an HWC image to at most ``max_side`` x ``max_side`` (rounded down to 8)."""
    side = max_side - max_side % 8
    h, w = image.shape[:2]
    th, tw = min(h, side), min(w, side)
    top, left = (h - th) // 2, (w - tw) // 2
    return image[top:top + th, left:left + tw]


@torch.inference_mode()
def restore(model: nn.Module, lq: np.ndarray, device: torch.device | str = "cpu", multiple: int = 8) -> np.ndarray:
    """Run ``model`` on one HWC float image (padded by reflection to ``multiple``); HWC float32 back."""
    x = torch.from_numpy(np.ascontiguousarray(lq.transpose(2, 0, 1))).unsqueeze(0).to(device)
    padded, size = pad_to_multiple(x, multiple)
    out = unpad(model(padded), size)
    return out[0].float().cpu().numpy().transpose(1, 2, 0)


def evaluate(
    model: nn.Module, pairs: Sequence[ImagePair], task: TaskInfo, device: torch.device | str = "cpu",
    max_side: int = 0, keep: Callable[[int, str], bool] | None = None,
) -> EvalResult:
    """Score ``model`` (put in eval mode) on ``pairs`` with ``task``'s colour space and crop border;
    ``keep(index, name)`` chooses the pairs whose images are kept in :attr:`EvalResult.kept`."""
    was_training = model.training
    model.eval()
    rows: list[dict[str, float | str]] = []
    kept = {}
    for i, pair in enumerate(pairs):
        lq, gt = pair.lq, pair.gt
        if max_side:
            lq, gt = centre_crop(lq, max_side), centre_crop(gt, max_side)
        _check_scorable(pair, gt.shape[:2], task.crop_border, max_side)
        out = restore(model, lq, device)
        scores = psnr_ssim(out, gt, color=task.color_space, crop_border=task.crop_border)
        base = psnr_ssim(lq, gt, color=task.color_space, crop_border=task.crop_border)
        rows.append({"name": pair.name, "psnr": scores["psnr"], "ssim": scores["ssim"],
                     "input_psnr": base["psnr"], "input_ssim": base["ssim"]})
        if keep is not None and keep(i, pair.name):
            kept[pair.name] = tuple(quantize(x).astype(np.uint8) for x in (lq, gt, out))
    model.train(was_training)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr", "ssim", "input_psnr", "input_ssim")}
    return EvalResult(**mean, per_image=rows, color=task.color_space, crop_border=task.crop_border,
                      max_side=max_side, kept=kept)


def _check_scorable(pair: ImagePair, size: tuple[int, ...], crop_border: int, max_side: int) -> None:
    """A :class:`DatasetError` naming ``pair``'s file when ``size`` (after any centre crop) minus the
    crop border is under SSIM's window."""
    if min(size) - 2 * crop_border >= SSIM_WINDOW:
        return
    where = pair.gt_path or pair.lq_path or repr(pair.name)
    cropped = f" after the centre crop to {max_side}" if max_side else ""
    border = f" plus a crop border of {crop_border} on each side" if crop_border else ""
    raise DatasetError(f"image {where} is {size[1]}x{size[0]} (WxH) pixels{cropped}; scoring needs at least "
                       f"{SSIM_WINDOW}x{SSIM_WINDOW}{border} (SSIM's window)")
