"""One writer per lake: an OS lock that dies with its holder.

``flock`` is released by the kernel when the last descriptor of the open lock file
is closed, however its holders exit (``kill -9`` included), so a crashed run never
leaves a stale lock behind. A run's worker processes inherit that descriptor
(``fileno``): the lake stays locked while any process of the run could still write,
so a worker orphaned by its parent's death can never commit beside the next run.

Tasks of a run that execute in processes the run did not start (``hyperlake
backfill`` on a Dask cluster, possibly on other hosts) cannot share the descriptor.
They write under a **run grant** instead: each hold of the lock gets a fresh holder
id, written where the lock lives (here, the lock file's content: ``pid …: command``
on the first line, ``holder <id>`` on the second), and a task checks before each
commit that the lake's current holder is still its run (``RunGrant.check``). When the
driver dies, the kernel drops its flock but the file still names it, so its orphaned
tasks may go on committing whole, span-named files until the next run takes the
lock and writes its own id; from then on every orphan stops at its next commit with
``GrantRevoked``. A release clears the id, so a task that outlives a finished run
stops too. A commit already past its check when the holder changes can still land:
it is a whole file named for what it covers, which the next run counts as done (or
compaction merges as a duplicate) — never a half-written one.

An object store has no flock: there the writer lock is a lease object with an expiry
(``lake.lease``). Both give the same small API (``WriterLock``): acquire/release (a
context manager, re-entrant within a process), ``check`` before committing (a lease
may have been lost; a flock cannot be), ``holder`` (this hold's id), ``grant()`` (a
picklable ``Grant`` another process checks before each of its commits, "is the lake
still held by <holder>?": ``RunGrant`` here, ``lake.lease.LeaseGrant`` there) and
``for_workers()`` (what a worker process of this run inherits: the flock's descriptor
here, a lease's grant there).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import uuid
from dataclasses import dataclass
from multiprocessing import reduction
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from hyperlake.errors import HyperlakeError


class LakeBusy(HyperlakeError):
    """Another hyperlake process is writing this lake; nothing was touched."""

    exit_code = 3


class GrantRevoked(HyperlakeError):
    """A task's run no longer holds the lake (its driver died and another run took the
    lock, or the run ended): the task must stop before committing anything more."""

    exit_code = 3


#: How the lock file names its holder (the line after ``pid …: command``).
HOLDER_PREFIX = "holder "


@dataclass(frozen=True)
class RunGrant:
    """The authority to write a lake on behalf of the run that holds its writer lock,
    for a task in a process that cannot hold the lock itself. Small and picklable: it
    travels with each task to its worker."""

    lock_file: Path
    holder: str  # the run's holder id (``LakeLock.holder``)

    def check(self) -> None:
        """Return if the lake's current holder is still this run; else ``GrantRevoked``
        (one line: which run, who holds the lake now). Call it before each commit."""
        current = holder_id(self.lock_file)
        if current == self.holder:
            return
        now = "no run holds it now" if current is None else \
            f"it is now held by another run ({_holder_line(self.lock_file)})"
        raise GrantRevoked(
            f"run {self.holder[:12]} no longer holds the lake {self.lock_file.parent.parent}: "
            f"{now}; this task stops before committing (what it committed stays, and the "
            "next run fetches the rest)")


def holder_id(lock_file: Path) -> str | None:
    """The id of the lake's current (or last unreleased) holder; None when the lock was
    released, or never taken."""
    try:
        text = lock_file.read_bytes()[:512].decode(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(HOLDER_PREFIX):
            return line[len(HOLDER_PREFIX):].strip() or None
    return None


class Grant(Protocol):
    """The authority to commit on behalf of the run holding a lake's writer lock, for a
    process that does not hold it itself: small and picklable."""

    @property
    def holder(self) -> str: ...

    def check(self) -> None:
        """Return while the lake is still held by ``holder``; raise (exit 3, one line)
        once it is not: stop before committing anything more."""
        ...


class WorkerHold(Protocol):
    """What a run's worker process inherits of the run's writer lock."""

    def adopt(self) -> Grant | None:
        """Called once in the worker: keep the hold alive; the grant to check before
        each commit (None: the inherited hold itself keeps other writers out)."""
        ...


class WriterLock(Protocol):
    """One writer per lake (``LakeLock`` on disk, ``lake.lease.Lease`` on an object
    store)."""

    def acquire(self) -> None: ...

    def release(self) -> None: ...

    def __enter__(self) -> WriterLock: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    @property
    def holder(self) -> str:
        """This hold's id (fresh for each acquisition)."""
        ...

    def check(self) -> None:
        """Before a commit: raise (exit 3) once this process may no longer write."""
        ...

    def grant(self) -> Grant: ...

    def for_workers(self) -> WorkerHold: ...


#: The locks this process holds, by where they live: a stage's workers inherit them.
_HELD: dict[str, WriterLock] = {}


def held_lock(lock_file: Any) -> WriterLock | None:
    """The lock this process holds at ``lock_file`` (a path or an object's URL)."""
    return _HELD.get(hold_key(lock_file))


def note_held(lock_file: Any, lock: WriterLock) -> None:
    """Record that this process now holds ``lock`` at ``lock_file``."""
    _HELD[hold_key(lock_file)] = lock


def note_released(lock_file: Any) -> None:
    _HELD.pop(hold_key(lock_file), None)


def hold_key(lock_file: Any) -> str:
    return os.path.abspath(lock_file) if isinstance(lock_file, Path) else str(lock_file)


class LakeLock:
    """The writer lock of one lake. Re-entrant within a process: a stage that runs
    inside a command already holding it (the command takes it before its first write,
    the market-list cache included) shares that hold instead of refusing itself."""

    def __init__(self, lock_file: Path) -> None:
        self.lock_file = lock_file
        self._fd: int | None = None
        self._shared: LakeLock | None = None
        self._holder: str | None = None

    @staticmethod
    def held(lock_file: Path) -> LakeLock | None:
        """The lock this process holds on ``lock_file``, if it holds it."""
        lock = held_lock(lock_file)
        return lock if isinstance(lock, LakeLock) else None

    def fileno(self) -> int:
        """The locked descriptor (for worker processes to inherit)."""
        if self._shared is not None:
            return self._shared.fileno()
        if self._fd is None:
            raise RuntimeError(f"{self.lock_file} is not locked by this process")
        return self._fd

    @property
    def holder(self) -> str:
        """This hold's id (fresh for every acquisition), as the lock file names it."""
        if self._shared is not None:
            return self._shared.holder
        if self._holder is None:
            raise RuntimeError(f"{self.lock_file} is not locked by this process")
        return self._holder

    def grant(self) -> RunGrant:
        """The grant this run's tasks write under (``RunGrant``)."""
        return RunGrant(self.lock_file, self.holder)

    def acquire(self) -> None:
        current = LakeLock.held(self.lock_file)
        if current is not None and current is not self:
            self._shared = current
            return
        try:
            self.lock_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise HyperlakeError(
                f"cannot open the lake's lock file {self.lock_file}: "
                f"{exc.strerror or exc}; it must be a writable regular file") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LakeBusy(
                f"another hyperlake run holds the lake {self.lock_file.parent.parent}"
                f" ({holder}); wait for it to finish or stop it, then run again"
            ) from None
        holder = uuid.uuid4().hex
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}: {' '.join(sys.argv[:3])}\n"
                     f"{HOLDER_PREFIX}{holder}\n".encode())
        self._fd = fd
        self._holder = holder
        note_held(self.lock_file, self)

    def release(self) -> None:
        if self._shared is not None:
            self._shared = None
            return
        note_released(self.lock_file)
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)  # no holder: grants of this run end here
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
            self._holder = None

    def check(self) -> None:
        """A flock cannot be lost while its descriptor is open: nothing to check."""

    def for_workers(self) -> WorkerHold:
        """The locked descriptor, for a spawned worker to inherit (``InheritedFd``)."""
        return InheritedFd(self.fileno())

    def __enter__(self) -> LakeLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


class InheritedFd:
    """A descriptor a spawned worker inherits: pickled (as the process starts) into
    multiprocessing's own fd passing, so the child gets the very open file."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_AdoptedFd, (reduction.DupFd(self.fd),))

    def adopt(self) -> Grant | None:
        return None


class _AdoptedFd:
    """The worker's side of ``InheritedFd``: the descriptor stays open until the
    process ends, so the lake stays locked while the worker could still write."""

    def __init__(self, dup: Any) -> None:
        self.dup = dup

    def adopt(self) -> Grant | None:
        self.dup.detach()
        return None


def _read_holder(fd: int) -> str:
    """The first line of the lock file (who holds it: pid and command)."""
    with contextlib.suppress(OSError):
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if text:
            return text.splitlines()[0]
    return "holder unknown"


def _holder_line(lock_file: Path) -> str:
    try:
        text = lock_file.read_bytes()[:200].decode(errors="replace").strip()
    except OSError:
        return "holder unknown"
    return text.splitlines()[0] if text else "holder unknown"
