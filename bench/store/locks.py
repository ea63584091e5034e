"""Claim files: at most one runner works on a job, across processes and machines sharing a folder.

One rule for every lock (a cell's ``run.lock``, a teacher's ``train.lock``, a test set's
``index.lock``, a tuning search's ``<name>.lock``, a teacher-replay run folder's ``<folder>.lock``):
**an owner is live only when proven live**.
The lock file holds the owner's ``host``, ``pid``, process ``start`` and ``time`` (JSON).

- On the owner's host it is live while process ``pid`` runs (not a zombie) and its start, read
  back, equals ``start``: ``<boot id>/<starttime>`` on Linux (``/proc/sys/kernel/random/boot_id``
  and field 22 of ``/proc/<pid>/stat``, clock ticks since boot), the text of
  ``ps -o lstart= -p <pid>`` elsewhere (to the second). Where neither can be read, a running
  pid counts as live.
- Of another host it is live while the file's mtime is younger than :data:`LEASE_SECONDS`; its
  holder touches the file every ``LEASE_SECONDS / 4`` from a heartbeat thread while it holds it.

Anything else is stale and is taken over at once, with one warning line naming the file and why:
empty, unreadable bytes, truncated JSON, a dead pid, a pid reused by another process (or one
from before this host booted), another host's lock older than the lease.

A lock file is never visible half-written: its content goes to a unique temporary file in the
same folder, which is then hard-linked onto the lock's path (``os.link``: atomic, fails when the
path exists, NFS-safe) and removed. So content that cannot be read is garbage, stale at once.

Takeover is race-free: under an exclusive ``flock`` on ``<lock>.guard`` (kept; the kernel drops
the flock when its process dies) the lock's bytes are read again, and only when they are the very
bytes judged stale is the file replaced by the taker's; otherwise the lock is judged afresh.
``release`` removes the file, under the guard, only while it still holds its owner's bytes.
``acquire`` judges the lock afresh at every poll: it never waits on an owner it cannot prove live.
SIGINT and SIGTERM that arrive while a lock is being taken or released (in the main thread) are
delivered right after, so a signal never leaves a lock half taken or half released.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

#: seconds another host's lock stays live after its holder last touched it (the holder touches it
#: every quarter of this)
LEASE_SECONDS = 600.0
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

_own_start: dict[int, str | None] = {}  # pid -> its start (a forked child has its own pid)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (``[0]`` is field 3, the state);
    None without such a process or without ``/proc``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, as text no later process with that pid shares (module doc);
    None when unknown."""
    if BOOT_ID.exists():
        fields = _proc_stat(pid)
        try:
            return f"{BOOT_ID.read_text().strip()}/{fields[19]}" if fields else None
        except (OSError, IndexError):
            return None
    try:
        out = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _running(pid: int) -> bool:
    """Whether ``pid`` runs on this host: it exists and is not a zombie."""
    fields = _proc_stat(pid)
    return pid_alive(pid) and not (fields and fields[0] == "Z")


def _start_of_this_process() -> str | None:
    pid = os.getpid()
    if pid not in _own_start:
        _own_start[pid] = process_start(pid)
    return _own_start[pid]


def _parse(data: bytes) -> tuple[dict | None, str]:
    """``(owner, "")`` for a lock's content, ``(None, why not)`` for anything else."""
    if not data.strip():
        return None, "the file is empty"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "unreadable bytes (not UTF-8 text)"
    try:
        owner = json.loads(text)
    except ValueError:
        return None, "truncated JSON" if text.lstrip().startswith("{") else "unreadable bytes (not JSON)"
    if not (isinstance(owner, dict) and isinstance(owner.get("host"), str) and type(owner.get("pid")) is int
            and isinstance(owner.get("time"), (int, float))):
        return None, "not a lock (no host, pid and time)"
    return owner, ""


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM held back for the ``with`` block and delivered after it (main thread only:
    Python runs signal handlers there, so other threads are never interrupted by one)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not None:  # None: a handler set outside Python, left alone
            old[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for sig in caught:
            signal.raise_signal(sig)


class FileLock:
    """``with FileLock(path):`` waits until acquired (see the module doc); ``try_acquire()`` does not."""

    def __init__(self, path: Path, poll: float = 1.0) -> None:
        self.path = Path(path)
        self.guard = self.path.with_name(self.path.name + ".guard")
        self.poll = poll
        self.held = False
        self._mine = b""
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def owner(self) -> dict | None:
        """The lock file's owner, or None when unlocked or unreadable."""
        data = self._read()
        return None if data is None else _parse(data)[0]

    def stale_reason(self) -> str | None:
        """Why the lock file is stale; None when there is none or its owner is proven live."""
        data = self._read()
        return None if data is None else self._judge(data)

    def is_stale(self) -> bool:
        return self.stale_reason() is not None

    def try_acquire(self) -> bool:
        """Take the lock when it is free or stale (a warning says which stale lock was taken over)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with _signals_deferred():
                return self._claim()
        except BaseException:  # a signal delivered as this returned: the caller would never release it
            self.release()
            raise

    def acquire(self) -> None:
        while not self.try_acquire():
            time.sleep(self.poll)

    def release(self) -> None:
        if not self.held:
            return
        with _signals_deferred():
            self._stop.set()
            if self._heartbeat is not None:
                self._heartbeat.join()
            if self._read() == self._mine:
                with self._guarded():
                    if self._read() == self._mine:  # not taken over meanwhile
                        self.path.unlink()
            self.held = False

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    # --- internals ---------------------------------------------------------------------------
    def _read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def _judge(self, data: bytes) -> str | None:
        """Why the lock holding ``data`` is stale; None when its owner is proven live."""
        owner, why = _parse(data)
        if owner is None:
            return why
        pid, start = owner["pid"], owner.get("start")
        if owner["host"] != socket.gethostname():
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return None  # released meanwhile: nothing to take over
            if age <= LEASE_SECONDS:
                return None
            return f"host {owner['host']}'s lock was last refreshed {age:.0f} s ago (lease {LEASE_SECONDS:.0f} s)"
        if not _running(pid):
            return f"pid {pid} is not running on this host"
        now = process_start(pid)
        if now == start:
            return None
        if isinstance(start, str) and now is not None and start.partition("/")[0] != now.partition("/")[0]:
            return f"it was written before this host last booted (pid {pid} is another process now)"
        return f"pid {pid} is another process now (its start time is not the lock's)"

    def _claim(self) -> bool:
        mine = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "start": _start_of_this_process(),
                           "time": time.time(), "token": uuid.uuid4().hex}).encode()
        while True:
            if self._link(mine):
                return self._hold(mine)
            seen = self._read()
            if seen is None:  # released meanwhile
                continue
            why = self._judge(seen)
            if why is None:
                return False
            with self._guarded():
                if self._read() != seen:  # changed since it was judged: judge it again
                    continue
                self.path.unlink()
                if not self._link(mine):
                    continue
            print(f"skd-bench: took over the stale lock {self.path}: {why}", file=sys.stderr)
            return self._hold(mine)

    def _link(self, content: bytes) -> bool:
        """Create the lock file holding ``content`` whole, unless it exists."""
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_bytes(content)
            os.link(tmp, self.path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def _hold(self, mine: bytes) -> bool:
        self._mine, self.held = mine, True
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, args=(self._stop, mine), daemon=True,
                                           name=f"heartbeat {self.path}")
        self._heartbeat.start()
        return True

    def _beat(self, stop: threading.Event, mine: bytes) -> None:
        """Touch the lock file every quarter lease while it is this owner's (other hosts see it live)."""
        while not stop.wait(LEASE_SECONDS / 4):
            try:
                if self.path.read_bytes() != mine:
                    return
                os.utime(self.path)
            except OSError:
                return

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """An exclusive flock on the guard file for the ``with`` block."""
        fd = os.open(self.guard, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
