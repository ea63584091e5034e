"""The tuned-options file of a profile, ``bench/tuned/<profile>.yaml``: the options ``skd-bench tune``
chose per method, merged into that profile's ``method_options`` when :mod:`bench.spec.profiles` is
imported (a grid's own options still replace them), and how each method's values were chosen.

Format (YAML under a header comment for people; written atomically)::

    options:          # {method: {option: value}}
      skd: {alpha1: 0.31, alpha2: 0.052, ...}
    tuning:           # {method: provenance}, read into Profile.tuning, the manifests and the captions
      skd: {spec: ablations/tuning/kd_methods.yaml, name: kd_methods, sampler: TPE, sampler_seed: 0,
            startup_trials: 6, trials: 16, metric: psnr, split: val, val_images: 11, task: denoise25,
            seed: 0, teacher_seed: 0, budget: {steps: 150, batch: 8, crop: 32}, best_trial: 7,
            value_dB: 28.91, study: kd_methods.db/skd-0123456789ab, date: '2026-12-01'}

Writing replaces the entries of the methods tuned now and keeps the others. Values are written
exactly as the winning trial used them, so a cell built from the file has that trial's options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from skd_core.atomic import atomic_write_text
from skd_core.errors import ConfigError, SkdError, check_keys

#: where the profiles read their tuned options (committed with the code)
TUNED_DIR = Path(__file__).resolve().parents[1] / "tuned"
FILE_KEYS = ("options", "tuning")
#: what every method's provenance states (the captions read ``trials``, ``val_images``, ``budget``)
PROVENANCE_KEYS = ("spec", "name", "sampler", "sampler_seed", "startup_trials", "trials", "metric", "split",
                   "val_images", "task", "seed", "teacher_seed", "budget", "best_trial", "value_dB", "study", "date")


@dataclass(frozen=True)
class Tuned:
    """A tuned-options file: ``options`` ``{method: {option: value}}`` and ``tuning`` ``{method:
    provenance}`` (same methods)."""

    options: dict[str, dict[str, Any]]
    tuning: dict[str, dict[str, Any]]


def tuned_path(profile: str, folder: Path = TUNED_DIR) -> Path:
    return Path(folder) / f"{profile}.yaml"


def read_tuned(path: Path) -> Tuned | None:
    """The file at ``path`` checked (methods registered, options valid for their method, a full
    provenance per method), or None when there is none; any problem is a :class:`ConfigError`
    naming the file."""
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"tuned options file {path}: cannot be read: {' '.join(str(exc).split())}") from None
    try:
        return _checked(data)
    except SkdError as exc:
        raise ConfigError(f"tuned options file {path}: {exc}") from None


def _checked(data: Any) -> Tuned:
    from skd_core.methods import METHODS  # registers the built-in methods

    if not isinstance(data, dict):
        raise ConfigError(f"must be a mapping with keys {', '.join(FILE_KEYS)}, got {type(data).__name__}")
    check_keys(data, FILE_KEYS, "key")
    options, tuning = data.get("options") or {}, data.get("tuning") or {}
    if not isinstance(options, dict) or not isinstance(tuning, dict):
        raise ConfigError("'options' and 'tuning' must map a method to a mapping")
    out: dict[str, dict[str, Any]] = {}
    for method, values in options.items():
        if not isinstance(values, dict) or not values:
            raise ConfigError(f"options.{method} must be a non-empty mapping of options, got {values!r}")
        resolved = METHODS.get(method).options(values).as_dict()
        out[method] = {name: resolved[name] for name in values}
        provenance = tuning.get(method)
        if not isinstance(provenance, dict):
            raise ConfigError(f"tuning.{method} (how its options were chosen) is missing")
        missing = [k for k in PROVENANCE_KEYS if k not in provenance]
        if missing:
            raise ConfigError(f"tuning.{method} lacks {', '.join(missing)}")
    extra = sorted(set(tuning) - set(options))
    if extra:
        raise ConfigError(f"tuning names method(s) {', '.join(extra)} without options")
    return Tuned(out, {m: dict(tuning[m]) for m in out})


def write_tuned(path: Path, options: Mapping[str, Mapping[str, Any]],
                tuning: Mapping[str, Mapping[str, Any]]) -> Tuned:
    """Replace the entries of the methods in ``options`` (with their ``tuning`` provenance) in the
    file at ``path``, keep the others, and write it atomically with its header; returns the whole."""
    old = read_tuned(path) or Tuned({}, {})
    new = Tuned({**old.options, **{m: dict(v) for m, v in options.items()}},
                {**old.tuning, **{m: dict(v) for m, v in tuning.items()}})
    _checked({"options": new.options, "tuning": new.tuning})
    body = yaml.safe_dump({"options": new.options, "tuning": new.tuning}, sort_keys=False, default_flow_style=False)
    atomic_write_text(path, header(path.stem, new) + body)
    return new


def header(profile: str, tuned: Tuned) -> str:
    """The comment heading the file: what it is, and one line per method on how it was tuned."""
    lines = [f"Tuned distillation options of profile '{profile}', written by `skd-bench tune`; bench/spec/profiles.py",
             "merges them into the profile's method_options (a grid's own options replace them).",
             "Per method: spec, sampler, trials, split, task, training seed, budget (student schedule), date."]
    for method, p in tuned.tuning.items():
        budget = p["budget"]
        lines.append(f"{method}: {p['spec']}, {p['sampler']} (seed {p['sampler_seed']}), {p['trials']} trials on "
                     f"the {p['split']} split ({p['val_images']} crops), {p['task']}, seed {p['seed']}, "
                     f"{budget['steps']} steps x batch {budget['batch']} x crop {budget['crop']}, best "
                     f"{p['value_dB']:.3f} dB (trial {p['best_trial']}), {p['date']}")
    return "".join(f"# {line}\n" for line in lines)
