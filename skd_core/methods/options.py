"""Per-method options: each registered method declares a frozen dataclass of its own knobs.

A field's type annotation (a string under ``from __future__ import annotations``, or the type)
decides its check (``float``, ``int``, ``bool``, ``str``, ``str | None``, ``tuple[str, ...] | None``,
``tuple[float, ...]``, ``float | str``); :func:`option` adds a range (``positive``: > 0,
else numbers are >= 0) or a set of ``choices`` (a tuple, or a callable returning one, for
registries that grow). ``float | str`` is a number in the range or one of the named ``choices``
(e.g. a fixed temperature or ``"learned"``). Unknown keys are rejected with the closest valid key first. A subclass
may add cross-field checks in ``__post_init__`` (call ``super().__post_init__()`` first).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import ConfigError, check_keys, closest_first, unknown

O = TypeVar("O", bound="MethodOptions")  # noqa: E741,N816 -- the usual TypeVar spelling


def option(default: Any, *, positive: bool = False,
           choices: tuple[str, ...] | Callable[[], list[str] | tuple[str, ...]] | None = None,
           help: str = "") -> Any:  # noqa: A002 -- argparse's name for it
    """A dataclass field with validation metadata (see the module docstring)."""
    return dataclasses.field(default=default, metadata={"positive": positive, "choices": choices, "help": help})


@dataclass(frozen=True)
class MethodOptions:
    """Base of every method's options; itself the options of a method with none."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _checked(f, getattr(self, f.name)))

    @classmethod
    def from_dict(cls: type[O], options: Mapping[str, Any] | None = None, where: str = "options") -> O:
        """Options from plain data (e.g. a YAML block); an unknown key raises ``UnknownNameError``
        naming the valid keys of this method, closest first."""
        options = dict(options or {})
        check_keys(options, cls.names(), "distillation option", where)
        try:
            return cls(**options)
        except ConfigError as exc:
            raise type(exc)(f"{where}: {exc}") from exc

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def as_dict(self) -> dict[str, Any]:
        """Plain data (tuples as lists), e.g. for a result record."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _choices(f: dataclasses.Field) -> list[str] | tuple[str, ...] | None:
    choices = f.metadata.get("choices")
    return choices() if callable(choices) else choices


def _rule(f: dataclasses.Field) -> str:
    return "> 0" if f.metadata.get("positive", False) else ">= 0"


def _checked_number(f: dataclasses.Field, value: Any, kind: str, named: str = "") -> float | int:
    """``value`` as a ``kind`` (``float`` or ``int``) in the field's range; ``named`` lists the
    alternative names the message offers (``float | str`` fields)."""
    if not _number(value) or not math.isfinite(value) or (kind == "int" and int(value) != value):
        what = f"a finite {'number' if kind == 'float' else 'integer'}"
        what = f"{what} {_rule(f)}{named}" if named else what
        raise ConfigError(f"option {f.name!r} must be {what}, got {value!r}")
    if value < 0 or (f.metadata.get("positive", False) and value == 0):
        raise ConfigError(f"option {f.name!r} must be {_rule(f)}{named}, got {value!r}")
    return float(value) if kind == "float" else int(value)


def _checked_number_or_name(f: dataclasses.Field, value: Any) -> float | str:
    """A ``float | str`` field: a number in range, or one of its ``choices`` (one error names both)."""
    valid = _choices(f) or ()
    named = "".join(f" or {c!r}" for c in valid)
    if not isinstance(value, str):
        return _checked_number(f, value, "float", named)
    if value not in valid:
        hint = f" (did you mean {closest_first(value, valid)[0]!r}?)" if valid else ""
        raise ConfigError(f"option {f.name!r} must be a number {_rule(f)}{named}, got {value!r}{hint}")
    return value


def _checked(f: dataclasses.Field, value: Any) -> Any:
    kind = (f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))).replace(" ", "")
    if kind in ("float", "int"):
        return _checked_number(f, value, kind)
    if kind == "float|str":
        return _checked_number_or_name(f, value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"option {f.name!r} must be true or false, got {value!r}")
        return value
    if kind in ("str", "str|None"):
        if value is None and kind == "str|None":
            return None
        if not isinstance(value, str):
            raise ConfigError(f"option {f.name!r} must be a string, got {value!r}")
        valid = _choices(f)
        if valid is not None and value not in valid:
            raise unknown(f"value of option {f.name!r}", value, valid)
        return value
    if kind == "tuple[str,...]|None":
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(p, str) and p for p in value):
            raise ConfigError(f"option {f.name!r} must be a non-empty list of dotted module paths, got {value!r}")
        return tuple(value)
    if kind == "tuple[float,...]":
        if not isinstance(value, (list, tuple)) or not all(_number(w) and w >= 0 for w in value):
            raise ConfigError(f"option {f.name!r} must be a list of numbers >= 0, got {value!r}")
        return tuple(float(w) for w in value)
    return value  # other annotations: the subclass checks them
