"""SIGTERM and SIGINT as exceptions, so a stopped runner unwinds through the ``finally`` and
``with`` blocks that release its locks and remove its temporary files.

SIGINT raises ``KeyboardInterrupt`` (Python's default) and SIGTERM :class:`Terminated`; both are
``BaseException``, so no ``except Exception`` records them as a job's failure. The exit status
of a stopped run is ``128 + signal number`` (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(BaseException):  # noqa: N818 -- named after the signal, like KeyboardInterrupt
    """SIGTERM, raised in the main thread."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated("SIGTERM")


@contextmanager
def signals_raise() -> Iterator[None]:
    """For the ``with`` block SIGTERM raises :class:`Terminated` and SIGINT ``KeyboardInterrupt``;
    the previous handlers come back after it. Outside the main thread nothing changes (Python
    sets handlers only there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_terminated),
           signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def stop_signal(exc: BaseException) -> signal.Signals:
    """The signal a stop exception (``KeyboardInterrupt`` or :class:`Terminated`) stands for."""
    return signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT


def exit_status(exc: BaseException) -> int:
    """``128 + the signal number`` of a stop exception: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + stop_signal(exc)
