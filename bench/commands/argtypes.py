"""Argument types of the ``skd-bench`` flags: integers with a sane range, refused while parsing, so a
bad flag is reported (by name, one line, exit 2) before anything runs or is written."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from skd_core.train.config import MIN_EVAL_SIDE


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    return parse


def eval_side(text: str) -> int:
    """An argparse ``type``: 0 (whole images) or a centre-crop side >= :data:`MIN_EVAL_SIDE`."""
    value = int_at_least(0)(text)
    if 0 < value < MIN_EVAL_SIDE:
        raise argparse.ArgumentTypeError(f"must be 0 (whole images) or an integer >= {MIN_EVAL_SIDE} (crops are "
                                         f"rounded down to a multiple of 8 and SSIM needs 11 pixels), got {value}")
    return value


def folder(text: str) -> Path:
    """An argparse ``type``: a folder path that may not exist yet, but is not a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    return path


#: the common cases
POSITIVE = int_at_least(1)
NON_NEGATIVE = int_at_least(0)

#: the one default of every ``--device`` flag (train, eval, run, tune): CUDA when this machine has
#: it, else the CPU, which is what a researcher on a GPU machine expects; on a machine without CUDA
#: it is the CPU, and the sessions whose results are CPU numbers pass ``--device cpu`` (noxfile.py)
DEFAULT_DEVICE = "auto"


def add_device(parser: argparse.ArgumentParser) -> None:
    """The ``--device`` flag, with :data:`DEFAULT_DEVICE`."""
    parser.add_argument("--device", default=DEFAULT_DEVICE,
                        help=f"cpu, cuda[:i] or auto: CUDA when available, else CPU (default {DEFAULT_DEVICE})")


def job_device(text: str, executor: str = "local") -> str:
    """The device jobs run on: resolved on this machine (``auto`` as CUDA or CPU; a missing GPU is one
    error before anything runs), except an explicit device for Ray workers, passed on as given (they
    may have GPUs that this machine lacks)."""
    from skd_core.complexity.env import resolve_device  # imports torch

    return str(resolve_device(text)) if executor == "local" or text == "auto" else text
