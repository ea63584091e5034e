"""Claim files: at most one runner works on a job, across processes and machines sharing a folder.

A lock is a file created with ``O_CREAT | O_EXCL`` (atomic on POSIX and NFSv3+) holding the
owner's host and pid. A lock whose owner is on this host and no longer alive (a runner killed with
SIGKILL) is stale and is taken over. A lock that cannot be read (empty or half-written: what a
SIGKILL between creating and writing it leaves) is stale once it is older than
:data:`UNREADABLE_GRACE` seconds. Locks of other hosts are trusted until removed by hand (or
until they are older than ``stale_after`` seconds, when set).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

#: seconds an unreadable lock file is given to be written by its owner before it counts as stale
UNREADABLE_GRACE = 10.0


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FileLock:
    """``with FileLock(path):`` blocks until acquired; ``try_acquire()`` does not block."""

    def __init__(self, path: Path, poll: float = 1.0, stale_after: float | None = None) -> None:
        self.path = Path(path)
        self.poll = poll
        self.stale_after = stale_after
        self.held = False

    def owner(self) -> dict | None:
        """The lock file's content, or None when unlocked or unreadable (empty, mid-write, not a lock)."""
        try:
            owner = json.loads(self.path.read_text())
            int(owner.get("pid", -1)), float(owner.get("time", 0))
        except (OSError, ValueError, TypeError, AttributeError):
            return None
        return owner

    def is_stale(self) -> bool:
        owner = self.owner()
        if owner is None:
            try:
                return time.time() - self.path.stat().st_mtime > UNREADABLE_GRACE
            except OSError:
                return False
        if owner.get("host") == socket.gethostname() and not pid_alive(int(owner.get("pid", -1))):
            return True
        return self.stale_after is not None and time.time() - float(owner.get("time", 0)) > self.stale_after

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self.is_stale():
                    self.path.unlink(missing_ok=True)
                    continue
                return False
            with os.fdopen(fd, "w") as f:
                json.dump({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}, f)
            self.held = True
            return True
        return False

    def acquire(self) -> None:
        while not self.try_acquire():
            time.sleep(self.poll)

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
