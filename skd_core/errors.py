"""The errors a user sees, and the one way they name what exists (closest match first)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping


class SkdError(Exception):
    """Base of every user-facing error; the CLI prints its message and exits non-zero."""


class ConfigError(SkdError, ValueError):
    """A config (file, key, value or combination) that cannot be used; the message names it."""


class UnknownNameError(SkdError, KeyError):
    """A lookup miss. The message lists the valid choices, closest match first."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def closest_first(name: str, choices: Iterable[str]) -> list[str]:
    """``choices`` sorted so that the ones most similar to ``name`` come first."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=len(choices), cutoff=0.0)
    return close + [c for c in choices if c not in close]


def unknown(kind: str, name: str, choices: Iterable[str], where: str = "") -> UnknownNameError:
    """The one error for an unknown ``name`` of some ``kind`` (preset, method, key, tap...)."""
    ranked = closest_first(name, choices)
    hint = f"; did you mean {ranked[0]!r}?" if ranked else ""
    loc = f" in {where}" if where else ""
    shown = ", ".join(ranked[:25]) + (" ..." if len(ranked) > 25 else "")
    return UnknownNameError(f"unknown {kind} {name!r}{loc}{hint} Valid: {shown}")


def check_keys(given: Mapping[str, object], valid: Iterable[str], kind: str = "key", where: str = "") -> None:
    """Reject the first key of ``given`` not in ``valid`` with :func:`unknown`."""
    valid = list(valid)
    for key in given:
        if key not in valid:
            raise unknown(kind, key, valid, where)
