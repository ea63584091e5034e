"""BasicSR / Restormer options files (``skd-bench train --opt FILE.yml``) read as profile overrides.

An options file says how BasicSR trains ``network_g``; here that network is the teacher, and the
file's settings replace the profile's (``--set`` and explicit flags replace them in turn):

- ``network_g`` (``type: Restormer``, Restormer's constructor keywords) -> ``teacher``: the built-in
  preset with the same keywords (the official block is ``restormer``, with ``LayerNorm_type:
  BiasFree`` ``restormer-biasfree``), else a preset ``basicsr-<hash>`` registered for the run;
- ``datasets.train`` / ``datasets.val`` ``dataroot_lq`` + ``dataroot_gt`` -> ``train_data`` /
  ``test_data`` ``folder:PARENT``: the two must be sibling folders named as a folder layout names
  them (``input``/``target``, ``rainy_image``/``ground_truth``, ``blur``/``sharp``); relative paths
  are relative to the current directory, as in BasicSR;
- ``datasets.train.gt_size`` -> ``teacher_train.crop``, ``batch_size_per_gpu`` -> ``teacher_train.batch``;
- ``train.total_iter`` -> ``steps``, ``warmup_iter`` -> ``warmup_steps`` (-1: none), ``use_grad_clip``
  -> ``grad_clip`` 0.01 (Restormer's norm) or 0, ``optim_g`` (``Adam``/``AdamW``, ``lr``,
  ``weight_decay``, ``betas``), ``scheduler``: one cosine period over ``total_iter``
  (``CosineAnnealingRestartCyclicLR`` / ``CosineAnnealingRestartLR``) -> ``cosine`` to its eta_min;
- ``val.val_freq`` -> ``teacher_train.val_every``;
- ``path.pretrain_network_g`` -> ``teacher_checkpoint`` (the teacher is that file, scored, not trained);
- ``manual_seed`` -> the teacher seed.

Settings this suite applies anyway are accepted where they say so (``geometric_augs: true``: the
8 dihedral transforms; ``pixel_opt`` L1, weight 1, mean; ``io_backend: disk``; ``filename_tmpl:
'{}'``; a single-stage "progressive" schedule; ``mixing_augs`` with ``mixup: false``; validation
metrics on uint8 images in the task's colour space and crop border, ``window_size: 8``;
``strict_load_g: true``; no ``resume_state``) and refused otherwise. Bookkeeping keys
(:data:`IGNORED` and the loader's speed knobs) are ignored with a note; every other key is refused,
one line per key path (:class:`UnsupportedOptionsError`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from skd_core.errors import ConfigError

#: top-level bookkeeping keys (experiment name, model class, GPUs, logging, distributed launch)
IGNORED = ("name", "model_type", "num_gpu", "logger", "dist_params")
#: dataset keys about loading speed or epochs: training here draws random crops for a number of steps
DATASET_IGNORED = ("name", "use_shuffle", "num_worker_per_gpu", "prefetch_mode", "dataset_enlarge_ratio", "pin_memory")
#: validation keys that change no score: channel order of saved images, images per forward
VAL_IGNORED = ("rgb2bgr", "max_minibatch")
DATASET_TYPES = ("Dataset_PairedImage", "PairedImageDataset")
#: (lq, gt) folder names of the folder layouts (:mod:`skd_core.data.folders`)
FOLDER_PAIRS = (("input", "target"), ("rainy_image", "ground_truth"), ("blur", "sharp"))
#: the gradient-norm clip of Restormer's ImageCleanModel with ``use_grad_clip: true``
RESTORMER_GRAD_CLIP = 0.01
OPTIMIZERS = {"AdamW": "adamw", "Adam": "adam"}
COSINE_SCHEDULERS = ("CosineAnnealingRestartCyclicLR", "CosineAnnealingRestartLR")
METRICS = ("calculate_psnr", "calculate_ssim")
#: Restormer's constructor keywords and their kinds of value
NETWORK_KEYS = {"inp_channels": "int", "out_channels": "int", "dim": "int", "num_blocks": "ints",
                "num_refinement_blocks": "int", "heads": "ints", "ffn_expansion_factor": "number", "bias": "bool",
                "LayerNorm_type": "layernorm", "dual_pixel_task": "bool"}
LAYER_NORM_TYPES = ("WithBias", "BiasFree")
#: a LayerNorm bias of a Restormer state_dict (``<block>.norm1.body.bias``)
LAYERNORM_BIAS = re.compile(r"(^|\.)norm[12]\.body\.bias$")


class UnsupportedOptionsError(ConfigError):
    """Keys of an options file that this suite cannot honour; ``lines``: one per key path."""

    def __init__(self, path: Path | str, lines: Iterable[str]) -> None:
        self.path, self.lines = Path(path), list(lines)
        super().__init__(f"{path}: " + "; ".join(self.lines))


@dataclass(frozen=True)
class Options:
    """An options file as this suite reads it: ``network`` (Restormer keywords of ``network_g``),
    ``overrides`` (profile overrides besides the teacher preset), ``seed`` (``manual_seed``) and the
    key paths ``ignored``."""

    path: Path
    network: dict[str, Any]
    overrides: dict[str, Any]
    seed: int | None
    ignored: tuple[str, ...]

    def profile_overrides(self) -> dict[str, Any]:
        """``overrides`` with the teacher preset of ``network`` (registered if no preset equals it)."""
        extra = {"teacher": teacher_preset(self.network, str(self.path))} if self.network else {}
        return {**self.overrides, **extra}


class _Reader:
    """Collects what a file maps to, what it ignores and one line per refused key path."""

    def __init__(self) -> None:
        self.refused: list[str] = []
        self.ignored: list[str] = []

    def refuse(self, at: str, why: str = "not supported") -> None:
        self.refused.append(f"{at}: {why}")

    def section(self, data: Mapping[str, Any], at: str, key: str) -> dict[str, Any]:
        """``data[key]`` as a mapping ({} when absent or null; refused when not a mapping)."""
        value = data.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.refuse(_join(at, key), f"must be a mapping, got {_show(value)}")
            return {}
        return dict(value)

    def expect(self, data: Mapping[str, Any], at: str, key: str, allowed: Iterable[Any], why: str) -> None:
        """Refuse ``data[key]`` (if present) unless it is one of ``allowed``."""
        if key in data and not any(_same(data[key], a) for a in allowed):
            self.refuse(_join(at, key), f"{_show(data[key])} not supported ({why})")

    def count(self, data: Mapping[str, Any], at: str, key: str, minimum: int = 0) -> int | None:
        """``data[key]`` as an int >= ``minimum`` (an integral float such as ``!!float 4e3`` too)."""
        if key not in data:
            return None
        value = _as_int(data[key])
        if value is None or value < minimum:
            self.refuse(_join(at, key), f"must be an integer >= {minimum}, got {_show(data[key])}")
            return None
        return value

    def rest(self, data: Mapping[str, Any], at: str, known: Iterable[str], ignored: Iterable[str] = ()) -> None:
        """Note ``ignored`` keys, refuse the keys of ``data`` neither ``known`` nor ignored."""
        known, ignored = set(known), set(ignored)
        for key in data:
            if key in ignored:
                self.ignored.append(_join(at, key))
            elif key not in known:
                self.refuse(_join(at, key))


def read_options(path: Path | str, task: str) -> Options:
    """Read options file ``path`` (``yaml.safe_load``) for a run of ``task``; an :class:`UnsupportedOptionsError`
    lists every key it cannot honour, a :class:`ConfigError` names a file that cannot be read."""
    from skd_core.data import get_task  # the task registry imports the data stack

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"options file {path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"options file {path}: must be a YAML mapping (BasicSR options), got {type(data).__name__}")
    info = get_task(task)
    r = _Reader()
    r.rest(data, "", ("manual_seed", "scale", "datasets", "network_g", "path", "train", "val"), IGNORED)
    r.expect(data, "", "scale", (1,), "restoration at scale 1 only")
    seed = r.count(data, "", "manual_seed")
    network = _network(r, r.section(data, "", "network_g"), "network_g")
    for key in ("inp_channels", "out_channels"):
        r.expect(network, "network_g", key, (3,), "the data here are RGB")
    r.expect(network, "network_g", "dual_pixel_task", (False,), "the data here are single RGB images")
    train: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    _train(r, r.section(data, "", "train"), train)
    _datasets(r, r.section(data, "", "datasets"), train, overrides)
    _val(r, r.section(data, "", "val"), train, info.color_space, info.crop_border)
    _path(r, r.section(data, "", "path"), overrides)
    if r.refused:
        raise UnsupportedOptionsError(path, r.refused)
    if train:
        overrides["teacher_train"] = train
    return Options(path, network, overrides, seed, tuple(r.ignored))


def network_kwargs(block: Mapping[str, Any], source: str = "options file") -> dict[str, Any]:
    """The Restormer constructor keywords of the ``network_g`` block of ``source``; an
    :class:`UnsupportedOptionsError` lists a ``type`` other than Restormer, unknown keys and bad values."""
    r = _Reader()
    kwargs = _network(r, block, "network_g")
    if r.refused:
        raise UnsupportedOptionsError(source, r.refused)
    return kwargs


def _network(r: _Reader, block: Mapping[str, Any], at: str) -> dict[str, Any]:
    if not block:
        return {}
    if block.get("type") != "Restormer":
        r.refuse(f"{at}.type", f"{_show(block.get('type'))} not supported (Restormer only)")
    r.rest(block, at, ["type", *NETWORK_KEYS])
    kwargs = {}
    for key, kind in NETWORK_KEYS.items():
        if key not in block:
            continue
        value = block[key]
        if kind == "int" and _positive(value):
            kwargs[key] = int(value)
        elif kind == "ints" and isinstance(value, list) and len(value) == 4 and all(map(_positive, value)):
            kwargs[key] = [int(v) for v in value]
        elif kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            kwargs[key] = float(value)
        elif (kind == "bool" and isinstance(value, bool)) or (kind == "layernorm" and value in LAYER_NORM_TYPES):
            kwargs[key] = value
        else:
            wanted = {"int": "a positive integer", "ints": "4 positive integers", "number": "a positive number",
                      "bool": "true or false", "layernorm": " or ".join(LAYER_NORM_TYPES)}[kind]
            r.refuse(f"{at}.{key}", f"must be {wanted}, got {_show(value)}")
    return kwargs


def _positive(value: Any) -> bool:
    return (number := _as_int(value)) is not None and number > 0


def _train(r: _Reader, block: Mapping[str, Any], out: dict[str, Any]) -> None:
    at = "train"
    r.rest(block, at, ("total_iter", "warmup_iter", "use_grad_clip", "scheduler", "optim_g", "pixel_opt",
                       "mixing_augs"))
    if (steps := r.count(block, at, "total_iter", 1)) is not None:
        out["steps"] = steps
    if "warmup_iter" in block:
        warmup = _as_int(block["warmup_iter"])
        if warmup is None or warmup < -1:
            r.refuse(f"{at}.warmup_iter", f"must be -1 (none) or an integer >= 0, got {_show(block['warmup_iter'])}")
        else:
            out["warmup_steps"] = max(warmup, 0)
    if "use_grad_clip" in block:
        if isinstance(block["use_grad_clip"], bool):
            out["grad_clip"] = RESTORMER_GRAD_CLIP if block["use_grad_clip"] else 0.0
        else:
            r.refuse(f"{at}.use_grad_clip", f"must be true or false, got {_show(block['use_grad_clip'])}")
    _scheduler(r, r.section(block, at, "scheduler"), out)
    optim = r.section(block, at, "optim_g")
    r.rest(optim, f"{at}.optim_g", ("type", "lr", "weight_decay", "betas"))
    r.expect(optim, f"{at}.optim_g", "type", OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}")
    if optim.get("type") in OPTIMIZERS:
        out["optimizer"] = OPTIMIZERS[optim["type"]]
    out.update({key: optim[key] for key in ("lr", "weight_decay", "betas") if key in optim})
    pixel = r.section(block, at, "pixel_opt")
    r.rest(pixel, f"{at}.pixel_opt", ("type", "loss_weight", "reduction"))
    r.expect(pixel, f"{at}.pixel_opt", "type", ("L1Loss",), "teachers train on pixel L1")
    r.expect(pixel, f"{at}.pixel_opt", "loss_weight", (1,), "pixel L1 of weight 1")
    r.expect(pixel, f"{at}.pixel_opt", "reduction", ("mean",), "the mean over pixels")
    mixing = r.section(block, at, "mixing_augs")
    if mixing.get("mixup", False) is not False:
        r.refuse(f"{at}.mixing_augs.mixup", f"{_show(mixing['mixup'])} not supported (no mixup augmentation)")


def _scheduler(r: _Reader, block: Mapping[str, Any], out: dict[str, Any]) -> None:
    at = "train.scheduler"
    if not block:
        return
    kind = block.get("type")
    if kind not in COSINE_SCHEDULERS:
        r.refuse(f"{at}.type", f"{_show(kind)} not supported (one cosine period: {' or '.join(COSINE_SCHEDULERS)})")
        return
    floor = "eta_mins" if kind == "CosineAnnealingRestartCyclicLR" else "eta_min"
    r.rest(block, at, ("type", "periods", "restart_weights", floor))
    if not _same(block.get("periods"), [out.get("steps")]):
        r.refuse(f"{at}.periods", f"{_show(block.get('periods'))} not supported (one period of train.total_iter "
                                  f"{_show(out.get('steps'))}: cosine from lr to the minimum)")
    r.expect(block, at, "restart_weights", ([1],), "one period, no restart")
    value = block.get(floor)
    if floor == "eta_mins" and value is not None:
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        else:
            r.refuse(f"{at}.eta_mins", f"{_show(value)} not supported (one minimum for the one period)")
            value = None
    if value is not None:
        out["min_lr"] = value
    out["schedule"] = "cosine"


def _datasets(r: _Reader, block: Mapping[str, Any], train: dict[str, Any], out: dict[str, Any]) -> None:
    for phase, setting in (("train", "train_data"), ("val", "test_data")):
        at = f"datasets.{phase}"
        ds = r.section(block, "datasets", phase)
        if not ds:
            continue
        extra = ("geometric_augs", "batch_size_per_gpu", "gt_size", "mini_batch_sizes", "iters", "gt_sizes")
        r.rest(ds, at, ("type", "dataroot_gt", "dataroot_lq", "filename_tmpl", "io_backend",
                        *(extra if phase == "train" else ())), DATASET_IGNORED)
        r.expect(ds, at, "type", DATASET_TYPES, "paired folders: " + " or ".join(DATASET_TYPES))
        r.expect(ds, at, "filename_tmpl", ("{}",), "inputs and targets share their names")
        r.expect(ds, at, "io_backend", ({"type": "disk"},), "files on disk")
        if (spec := _folder(r, ds, at)) is not None:
            out[setting] = spec
        if phase != "train":
            continue
        r.expect(ds, at, "geometric_augs", (True,), "training crops always get the 8 flips and rotations")
        if (batch := r.count(ds, at, "batch_size_per_gpu", 1)) is not None:
            train["batch"] = batch
        if (crop := r.count(ds, at, "gt_size", 1)) is not None:
            train["crop"] = crop
        for key, single, name in (("mini_batch_sizes", batch, "batch_size_per_gpu"),
                                  ("iters", train.get("steps"), "train.total_iter"), ("gt_sizes", crop, "gt_size")):
            r.expect(ds, at, key, ([single],) if single is not None else (),
                     f"progressive training: one stage, of {name}")
    r.rest(block, "datasets", ("train", "val"))


def _folder(r: _Reader, ds: Mapping[str, Any], at: str) -> str | None:
    """``folder:PARENT`` of the sibling ``dataroot_lq`` and ``dataroot_gt`` folders."""
    gt, lq = ds.get("dataroot_gt"), ds.get("dataroot_lq")
    if gt is None and lq is None:
        return None
    if not isinstance(gt, str) or not isinstance(lq, str):
        r.refuse(f"{at}.{'dataroot_lq' if isinstance(gt, str) else 'dataroot_gt'}",
                 "needed with the other dataroot (paired folders), as a path")
        return None
    gt_path, lq_path = Path(gt), Path(lq)
    if gt_path.parent != lq_path.parent or (lq_path.name, gt_path.name) not in FOLDER_PAIRS:
        names = ", ".join(f"{a}/ + {b}/" for a, b in FOLDER_PAIRS)
        r.refuse(f"{at}.dataroot_lq", f"{_show(lq)} with dataroot_gt {_show(gt)} not supported "
                                      f"(sibling folders of one parent, named {names})")
        return None
    return f"folder:{gt_path.parent}"


def _val(r: _Reader, block: Mapping[str, Any], train: dict[str, Any], color: str, crop_border: int) -> None:
    at = "val"
    r.rest(block, at, ("val_freq", "window_size", "save_img", "use_image", "metrics"), VAL_IGNORED)
    if (every := r.count(block, at, "val_freq", 0)) is not None:
        train["val_every"] = every
    r.expect(block, at, "window_size", (8,), "inputs are padded to a multiple of 8")
    r.expect(block, at, "save_img", (False,), "skd-bench eval --save-images writes restored images")
    r.expect(block, at, "use_image", (True,), "scores are computed on uint8 images")
    metrics = r.section(block, at, "metrics")
    for name in metrics:
        m = r.section(metrics, f"{at}.metrics", name)
        where = f"{at}.metrics.{name}"
        r.rest(m, where, ("type", "crop_border", "test_y_channel"))
        r.expect(m, where, "type", METRICS, "PSNR and SSIM are always scored")
        r.expect(m, where, "crop_border", (crop_border,), f"the task's crop border is {crop_border}")
        r.expect(m, where, "test_y_channel", (color == "y",), f"the task is scored on {color.upper()}")


def _path(r: _Reader, block: Mapping[str, Any], out: dict[str, Any]) -> None:
    at = "path"
    r.rest(block, at, ("pretrain_network_g", "strict_load_g", "resume_state", "param_key", "param_key_g"))
    checkpoint = block.get("pretrain_network_g")
    if isinstance(checkpoint, str):
        out["teacher_checkpoint"] = checkpoint
    elif checkpoint is not None:
        r.refuse(f"{at}.pretrain_network_g", f"must be a file path or null, got {_show(checkpoint)}")
    r.expect(block, at, "strict_load_g", (True,), "checkpoints load strictly")
    r.expect(block, at, "resume_state", (None,), "use skd-bench train --resume")
    for key in ("param_key", "param_key_g"):
        r.expect(block, at, key, ("params",), "the 'params' entry is read")


# --- presets ---------------------------------------------------------------------------------------
def restormer_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Every Restormer constructor keyword: ``kwargs`` over the defaults, sequences as lists."""
    import inspect

    from skd_core.models import Restormer

    full = {name: p.default for name, p in inspect.signature(Restormer).parameters.items()}
    full.update(kwargs)
    return {k: list(v) if isinstance(v, (list, tuple)) else float(v) if k == "ffn_expansion_factor" else v
            for k, v in full.items()}


def find_preset(kwargs: Mapping[str, Any]) -> str | None:
    """The first registered Restormer preset built with these keywords (after defaults), or None."""
    from skd_core.models import MODELS, Restormer

    wanted = restormer_kwargs(kwargs)
    for name in MODELS:
        preset = MODELS.get(name)
        if preset.factory is Restormer and restormer_kwargs(preset.kwargs) == wanted:
            return name
    return None


def teacher_preset(kwargs: Mapping[str, Any], source: str = "an options file") -> str:
    """The preset of a ``network_g`` block's keywords: an equal one, else ``basicsr-<hash>`` (registered)."""
    from skd_core.models import MODELS, Restormer, register_model

    if (name := find_preset(kwargs)) is not None:
        return name
    digest = hashlib.sha256(json.dumps(restormer_kwargs(kwargs), sort_keys=True).encode()).hexdigest()[:8]
    name = f"basicsr-{digest}"
    if name not in MODELS:
        register_model(name, Restormer, f"network_g of {source}", "teacher", **kwargs)
    return name


# --- checkpoints of the other LayerNorm variant ------------------------------------------------------
def layernorm_hint(model: str, own: Mapping[str, Any], state: Mapping[str, Any]) -> str | None:
    """What to use instead of preset ``model`` (state_dict ``own``) for checkpoint ``state`` when they
    differ only in LayerNorm biases (a BiasFree checkpoint and a WithBias model, or the reverse)."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if any(own[k].shape != state[k].shape for k in own if k in state):
        return None
    if missing and not unexpected and all(LAYERNORM_BIAS.search(k) for k in missing):
        wanted, has = "BiasFree", "no LayerNorm biases"
    elif unexpected and not missing and all(LAYERNORM_BIAS.search(k) for k in unexpected):
        wanted, has = "WithBias", "LayerNorm biases"
    else:
        return None
    from skd_core.models import MODELS

    other = find_preset({**MODELS.get(model).kwargs, "LayerNorm_type": wanted})
    use = f"preset {other!r}" if other else f"a preset (or network_g) with LayerNorm_type: {wanted}"
    return f"the checkpoint has {has}, so it is a LayerNorm_type {wanted} Restormer: use {use}"


def with_layernorm_hint(exc: Exception, model: str, path: Path | str) -> Exception:
    """``exc`` (a checkpoint that does not fit preset ``model``), or a ``CheckpointError`` with its
    message and :func:`layernorm_hint` when that explains it."""
    from skd_core.models import CheckpointError, build_model, read_state_dict

    try:
        hint = layernorm_hint(model, build_model(model).state_dict(), read_state_dict(path))
    except Exception:  # an unreadable file or a preset that is not a Restormer: the original error says it
        return exc
    return exc if hint is None else CheckpointError(f"{exc}; {hint}")


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if float(value).is_integer() else None


def _same(a: Any, b: Any) -> bool:
    """Equal as YAML means it: ``1 == 1.0``, but ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _show(value: Any) -> str:
    """``value`` as YAML (JSON flow style) writes it: ``true``, ``null``, ``[1, 2]``."""
    return json.dumps(value, default=str)


def _join(at: str, key: str) -> str:
    return f"{at}.{key}" if at else str(key)
