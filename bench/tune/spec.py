"""Tuning specs (``ablations/tuning/*.yaml``): which options of which methods ``skd-bench tune``
searches, with how many trials, at which profile, task and seeds. Validated in full before anything
runs; every error is one :class:`ConfigError` naming the file and the key path.

Spec keys::

    name: kd_methods            # names the search: <runs>/tuning/<name>.db, results/tuning/<name>_trials.csv
    description: ...            # one line (optional)
    profile: cpu                # whose student schedule is the budget; --profile replaces it
    profile_overrides: {}       # e.g. {method_options: {skd: {contrastive: true}}} (options held fixed)
    task: denoise25
    seed: 0                     # training seed of every trial
    teacher_seed: 0             # the teacher every trial distils from (the grids' default)
    sampler_seed: 0             # seeds Optuna's TPE sampler
    trials: 16                  # per method, the same for every method; --trials replaces it
    startup_trials: 10          # TPE's random start (Optuna's default 10)
    metric: psnr                # maximised, on ...
    split: val                  # ... the validation crops (the only split tuning may read)
    space:                      # {method: {option: spec}}
      skd:
        alpha3: {low: 0.001, high: 0.3, log: true}   # a float range (log-uniform when log: true)
        mca_dims: {choices: [channel, both]}          # a categorical option (numbers, strings, booleans)

A range needs an option whose annotation is a float; ``log: true`` needs ``low > 0``; every endpoint
and every choice is checked against the method's own options class (with the profile's options of
that method around it), so a value a cell would refuse is refused here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.spec.profiles import Profile, untuned_profile
from skd_core.data import get_task
from skd_core.errors import ConfigError, SkdError, closest_first
from skd_core.methods import METHODS

SPEC_KEYS = ("name", "description", "profile", "profile_overrides", "task", "seed", "teacher_seed", "sampler_seed",
             "trials", "startup_trials", "metric", "split", "space")
RANGE_KEYS = ("low", "high", "log")
PARAM_KEYS = (*RANGE_KEYS, "choices")
METRICS = ("psnr",)
SPLITS = ("val",)
#: Optuna's default number of random trials before TPE models the history
STARTUP_TRIALS = 10


@dataclass(frozen=True)
class Param:
    """One searched option: a float range ``[low, high]`` (log-uniform when ``log``) or ``choices``."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class TuningSpec:
    """A checked tuning spec; ``profile`` is the untuned profile with the spec's overrides applied,
    ``space`` maps each method (in spec order) to its searched options."""

    name: str
    description: str
    path: Path
    profile: Profile
    profile_overrides: dict[str, Any]
    task: str
    seed: int
    teacher_seed: int
    sampler_seed: int
    trials: int
    startup_trials: int
    metric: str
    split: str
    space: dict[str, tuple[Param, ...]]


def load_spec(path: str | Path, profile: str | None = None, trials: int | None = None) -> TuningSpec:
    """Read and check the spec at ``path``; ``profile`` and ``trials`` (command-line flags) replace
    the spec's. Every error is a :class:`ConfigError` ``tuning spec PATH: KEY.PATH: problem``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"tuning spec not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"tuning spec {path}: cannot be read as YAML: {' '.join(str(exc).split())}") from None
    try:
        return _checked(data, path, profile, trials)
    except SkdError as exc:
        raise ConfigError(f"tuning spec {path}: {exc}") from None


def _checked(data: Any, path: Path, profile_name: str | None, trials: int | None) -> TuningSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"must be a mapping of keys, got {type(data).__name__}")
    for key in data:
        if key not in SPEC_KEYS:
            raise _unknown(str(key), "key", SPEC_KEYS, str(key))
    for key in ("trials", "space"):
        if key not in data:
            raise ConfigError(f"{key}: required")
    overrides = _typed(data, "profile_overrides", dict, {})
    profile = untuned_profile(profile_name or _typed(data, "profile", str, "cpu"))
    if overrides:
        profile = profile.override(overrides, "profile_overrides")
    task = _typed(data, "task", str, "denoise25")
    get_task(task)
    ints = {key: _count(data, key, default, minimum) for key, default, minimum in (
        ("seed", 0, 0), ("teacher_seed", 0, 0), ("sampler_seed", 0, 0), ("trials", None, 1),
        ("startup_trials", STARTUP_TRIALS, 1))}
    if trials is not None:
        ints["trials"] = trials
    metric, split = _typed(data, "metric", str, "psnr"), _typed(data, "split", str, "val")
    if metric not in METRICS:
        raise ConfigError(f"metric: {metric!r} cannot be tuned on; valid: {', '.join(METRICS)}")
    if split not in SPLITS:
        raise ConfigError(f"split: {split!r} cannot be tuned on (test images are never read while tuning); "
                          f"valid: {', '.join(SPLITS)}")
    space = _typed(data, "space", dict, {})
    if not space:
        raise ConfigError("space: must name at least one method and its options")
    searched = {str(method): _method_space(str(method), options, profile) for method, options in space.items()}
    return TuningSpec(_typed(data, "name", str, path.stem), _typed(data, "description", str, ""), path, profile,
                      overrides, task, ints["seed"], ints["teacher_seed"], ints["sampler_seed"], ints["trials"],
                      ints["startup_trials"], metric, split, searched)


def _method_space(method: str, options: Any, profile: Profile) -> tuple[Param, ...]:
    where = f"space.{method}"
    if method not in METHODS:
        raise _unknown(method, "distillation method", METHODS.names(), where)
    fields = {f.name: f for f in dataclasses.fields(METHODS.get(method).options_class)}
    if not fields:
        raise ConfigError(f"{where}: method {method!r} has no options to tune")
    if not isinstance(options, dict) or not options:
        raise ConfigError(f"{where}: must map options of method {method!r} to ranges or choices, got {options!r}")
    params = []
    for name, spec in options.items():
        at = f"{where}.{name}"
        if name not in fields:
            raise _unknown(str(name), f"option of method {method!r}", fields, at)
        params.append(_param(method, fields[name], spec, at, profile.method_options.get(method, {})))
    return tuple(params)


def _param(method: str, field: dataclasses.Field, spec: Any, at: str, fixed: dict[str, Any]) -> Param:
    if not isinstance(spec, dict):
        raise ConfigError(f"{at}: must be {{low: L, high: H, log: true|false}} or {{choices: [...]}}, got {spec!r}")
    for key in spec:
        if key not in PARAM_KEYS:
            raise _unknown(str(key), "key", PARAM_KEYS, f"{at}.{key}")

    def check(value: Any, where: str) -> None:  # the value as a cell would take it
        try:
            METHODS.get(method).options_class(**{**fixed, field.name: value})
        except SkdError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    if "choices" in spec:
        if set(spec) != {"choices"}:
            raise ConfigError(f"{at}: give either choices or low/high/log, not both")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{at}.choices: must be a non-empty list, got {choices!r}")
        for i, value in enumerate(choices):
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise ConfigError(f"{at}.choices[{i}]: must be a number, string, boolean or null, got {value!r}")
            check(value, f"{at}.choices[{i}]")
        if len({repr(v) for v in choices}) != len(choices):
            raise ConfigError(f"{at}.choices: values must be distinct, got {choices!r}")
        return Param(field.name, choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{at}: a range needs both low and high, got {spec!r}")
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    if "float" not in kind.split("|")[0]:
        raise ConfigError(f"{at}: option {field.name!r} is not a number ({kind}); give {{choices: [...]}}")
    low, high, log = spec["low"], spec["high"], spec.get("log", False)
    for key, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{at}.{key}: must be a finite number, got {value!r}")
    if not isinstance(log, bool):
        raise ConfigError(f"{at}.log: must be true or false, got {log!r}")
    if low >= high:
        raise ConfigError(f"{at}: empty or inverted range: low {low!r} must be < high {high!r}")
    if log and low <= 0:
        raise ConfigError(f"{at}.low: a log range needs low > 0, got {low!r}")
    check(float(low), f"{at}.low")
    check(float(high), f"{at}.high")
    return Param(field.name, float(low), float(high), log)


def _unknown(name: str, kind: str, valid: Any, where: str) -> ConfigError:
    """``WHERE: unknown KIND; did you mean 'X'? Valid: ...`` (``where`` ends with ``name``; closest
    match first)."""
    ranked = closest_first(name, valid)
    return ConfigError(f"{where}: unknown {kind}; did you mean {ranked[0]!r}? Valid: {', '.join(ranked)}")


def _typed(data: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise ConfigError(f"{key}: must be a {kind.__name__}, got {value!r}")
    return value


def _count(data: dict[str, Any], key: str, default: int | None, minimum: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}: must be an integer >= {minimum}, got {value!r}")
    return value
