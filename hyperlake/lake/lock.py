"""One writer per lake: an OS lock that dies with its holder.

``flock`` is released by the kernel when the last descriptor of the open lock file
is closed, however its holders exit (``kill -9`` included), so a crashed run never
leaves a stale lock behind. A run's worker processes inherit that descriptor
(``fileno``): the lake stays locked while any process of the run could still write,
so a worker orphaned by its parent's death can never commit beside the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path
from types import TracebackType

from hyperlake.errors import HyperlakeError


class LakeBusy(HyperlakeError):
    """Another hyperlake process is writing this lake; nothing was touched."""

    exit_code = 3


#: The locks this process holds, by lock file: a stage's workers inherit them.
_HELD: dict[str, LakeLock] = {}


class LakeLock:
    """The writer lock of one lake. Re-entrant within a process: a stage that runs
    inside a command already holding it (the command takes it before its first write,
    the market-list cache included) shares that hold instead of refusing itself."""

    def __init__(self, lock_file: Path) -> None:
        self.lock_file = lock_file
        self._fd: int | None = None
        self._shared: LakeLock | None = None

    @staticmethod
    def held(lock_file: Path) -> LakeLock | None:
        """The lock this process holds on ``lock_file``, if it holds it."""
        return _HELD.get(os.path.abspath(lock_file))

    def fileno(self) -> int:
        """The locked descriptor (for worker processes to inherit)."""
        if self._shared is not None:
            return self._shared.fileno()
        if self._fd is None:
            raise RuntimeError(f"{self.lock_file} is not locked by this process")
        return self._fd

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
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}: {' '.join(sys.argv[:3])}\n".encode())
        self._fd = fd
        _HELD[os.path.abspath(self.lock_file)] = self

    def release(self) -> None:
        if self._shared is not None:
            self._shared = None
            return
        _HELD.pop(os.path.abspath(self.lock_file), None)
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> LakeLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if text:
            return text
    return "holder unknown"
