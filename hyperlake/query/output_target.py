"""Where ``--output`` goes, for ``hyperlake sql`` and ``hyperlake export`` alike.

Why not always "write a temporary file beside the target and rename it over": that is
right for a regular file (a failed run leaves the old file or the whole new one, never
half of one), but a rename replaces whatever owned the name: a device node
(``/dev/full``, ``/dev/null``), a FIFO a reader waits on, a symlink
(``/dev/stdout`` → ``/proc/self/fd/1``). So the target decides:

- ``-``: standard output.
- a regular file, or a name that does not exist yet (in a folder that does): written
  beside it, then renamed over it, atomically.
- a character device or a FIFO: written through, in place, as the bytes come (a
  failure part-way leaves what was already sent).
- a symlink: followed, never replaced. The link stays and its target is written by the
  rules above; when that target is a regular file (or does not exist yet) a note says
  which file is written.
- a folder, a block device, a socket, a symlink loop, a name under a file or in a
  missing folder: refused before any work is done.

Every failure is one line naming the path, a ``UserError`` (exit 2): the refusals
above, permission denied, a read-only file system, a full disk (``ENOSPC``). A regular
file is then left as it was. A closed pipe is not our failure: ``BrokenPipeError``
goes up as it is (the CLI ends quietly).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from hyperlake.errors import UserError
from hyperlake.lake.atomic import atomic_path

STDOUT = "-"
FLAG = "--output"
#: ``--output``'s help, the same for every command that writes a result.
HELP = ("write to FILE: a regular file is replaced atomically (never half-written); a "
        "FIFO or a device such as /dev/null is written through; a symlink is followed, "
        "never replaced; - is standard output. A folder, a missing folder or an "
        "unwritable FILE is a one-line error, exit 2")


@dataclass(frozen=True)
class OutputTarget:
    """A checked ``--output``: ``path`` None is standard output."""

    shown: str
    path: Path | None
    atomic: bool
    note: str | None = None

    @property
    def is_stdout(self) -> bool:
        return self.path is None

    def failure(self, exc: OSError) -> UserError:
        reason = exc.strerror or str(exc)
        kept = "; nothing was written" if self.atomic else ""
        return UserError(f"{FLAG}: cannot write {self.shown}: {reason}{kept}")


def _refused(path: Path | str, why: str) -> UserError:
    return UserError(f"{FLAG}: {path} {why}")


def _kind_refusal(mode: int) -> str | None:
    if stat.S_ISDIR(mode):
        return "is a folder; name a file"
    if stat.S_ISBLK(mode):
        return "is a block device; name a file"
    if stat.S_ISSOCK(mode):
        return "is a socket; name a file"
    return None


def _check_folder(final: Path) -> None:
    """A new file needs an existing folder: a typo must not create folders."""
    folder = final.parent
    try:
        mode = os.stat(folder).st_mode
    except FileNotFoundError:
        raise _refused(folder, "does not exist; create the folder first") from None
    except OSError as exc:
        raise _refused(folder, f"cannot be used: {exc.strerror}") from None
    if not stat.S_ISDIR(mode):
        raise _refused(folder, "is not a folder")


def output_target(text: str) -> OutputTarget:
    """Check ``--output`` before any work is done (see the module docstring)."""
    if text == STDOUT:
        return OutputTarget("standard output", None, atomic=False)
    if not text:
        raise UserError(f"{FLAG}: empty; name a file, or - for standard output")
    given = Path(text).expanduser()
    try:
        mode: int | None = os.stat(given).st_mode  # through any symlink
    except FileNotFoundError:
        mode = None
    except OSError as exc:  # a symlink loop, a name under a file, too long, no access
        raise _refused(given, f"cannot be used: {exc.strerror}") from None
    linked = given.is_symlink()
    if mode is not None and (why := _kind_refusal(mode)) is not None:
        raise _refused(given, why)
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        return OutputTarget(str(given), given, atomic=False)
    final = Path(os.path.realpath(given)) if linked else given
    _check_folder(final)
    note = f"{given} is a symlink; writing its target {final}" if linked else None
    return OutputTarget(str(given), final, atomic=True, note=note)


@contextlib.contextmanager
def _reported(target: OutputTarget) -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise target.failure(exc) from None


def _write_all(target: OutputTarget, stream: BinaryIO, chunks: Iterable[bytes]) -> int:
    """Write each chunk as it comes (an error making a chunk is not ours to report)."""
    size = 0
    for chunk in chunks:
        with _reported(target):
            stream.write(chunk)
        size += len(chunk)
    with _reported(target):
        stream.flush()
    return size


def _write_through(target: OutputTarget, path: Path, chunks: Iterable[bytes]) -> int:
    with _reported(target):
        stream = open(path, "wb")  # noqa: SIM115 - closed below, its errors reported
    try:
        return _write_all(target, stream, chunks)
    finally:
        with contextlib.suppress(OSError):
            stream.close()


def write_output(target: OutputTarget, chunks: Iterable[bytes]) -> int:
    """Write ``chunks`` to the target; returns the bytes written."""
    if target.path is None:
        sys.stdout.flush()
        return _write_all(target, sys.stdout.buffer, chunks)
    if not target.atomic:
        return _write_through(target, target.path, chunks)
    written = False
    try:
        with atomic_path(target.path) as tmp:
            size = _write_through(target, tmp, chunks)
            written = True
    except OSError as exc:  # after the last chunk: fsync, rename (before: not ours)
        if not written:
            raise
        raise target.failure(exc) from None
    return size
