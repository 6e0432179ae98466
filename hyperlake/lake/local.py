"""The lake in a folder on this machine: what it always was.

A file appears whole by temporary file + fsync + ``os.replace`` + fsync of the folder
(``lake.atomic``); one writer at a time holds the ``flock`` (``lake.lock``), so no
write needs a precondition here: every put is an atomic replace.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from hyperlake.errors import UserError
from hyperlake.lake.atomic import (
    atomic_path,
    fsync_dir,
    remove_durably,
    sweep_temporaries,
    write_bytes_atomic,
    write_parquet_atomic,
)
from hyperlake.lake.lock import LakeLock, WriterLock
from hyperlake.lake.store import Entry, IfMatch, Location, ParquetFile, Staging

MAGIC = b"PAR1"
_TAIL = 8  # footer length (4 bytes, little endian) + magic


def parquet_looks_whole(path: Path) -> str | None:
    """None when ``path`` has a Parquet file's head and tail, else what is wrong (the
    cheap test of ``lake.quarantine``: a truncated write fails it without reading a
    row)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < len(MAGIC) + _TAIL:
                return f"{size} bytes: too short for Parquet"
            head = f.read(len(MAGIC))
            f.seek(size - _TAIL)
            tail = f.read(_TAIL)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    footer = int.from_bytes(tail[:4], "little")
    if head != MAGIC or tail[4:] != MAGIC:
        return "not a whole Parquet file (truncated?)"
    if footer + _TAIL + len(MAGIC) > size:
        return "its footer is longer than the file"
    return None


def _glob(folder: Path, pattern: str, attempts: int = 5) -> list[Path]:
    """``folder.glob(pattern)``, sorted. A folder another writer removes while the walk
    reads it (a compaction task pruning an emptied job or series folder beside a verify
    task) makes ``Path.glob`` raise FileNotFoundError: walk again, it is gone then."""
    for _ in range(attempts - 1):
        try:
            return sorted(folder.glob(pattern))
        except FileNotFoundError:
            continue
    return sorted(folder.glob(pattern))


def _path(location: Location) -> Path:
    if not isinstance(location, Path):
        raise TypeError(f"{location} is not a path on this machine")
    return location


class _LocalStaging:
    def __init__(self, final: Path, tmp: Path) -> None:
        self.final, self.tmp = final, tmp

    @property
    def sink(self) -> str:
        return str(self.tmp)

    def metadata(self) -> Any:
        import pyarrow.parquet as pq

        return pq.read_metadata(self.tmp)

    def same_as(self, current: ParquetFile) -> bool:
        final = _path(current.location)
        return (self.tmp.stat().st_size == final.stat().st_size
                and self.tmp.read_bytes() == final.read_bytes())


class LocalStore:
    """The lake in a folder on this machine (``lake.atomic``'s writes, ``flock``)."""

    lock_suffix: ClassVar[str] = ".lock"
    can_tear: ClassVar[bool] = True

    def probe(self, root: Location) -> bool:
        import stat

        path = _path(root)
        try:
            info = path.stat()
        except FileNotFoundError:
            return False
        except OSError as exc:  # a symlink loop, a name too long, a file on the way
            raise UserError(f"--lake: {path}: {exc.strerror or exc}") from None
        if not stat.S_ISDIR(info.st_mode):
            raise UserError(f"--lake: {path} exists and is not a directory")
        return True

    def absolute(self, location: Location) -> Location:
        return _path(location).resolve()

    def files(self, folder: Location, pattern: str) -> list[Location]:
        return list[Location](_glob(_path(folder), pattern))

    def dirs(self, folder: Location, pattern: str) -> list[Location]:
        return list[Location](p for p in _glob(_path(folder), pattern) if p.is_dir())

    def stat(self, location: Location) -> Entry | None:
        try:
            info = _path(location).stat()
        except FileNotFoundError:
            return None
        return Entry(location, info.st_size, info.st_mtime)

    def read(self, location: Location) -> bytes:
        return _path(location).read_bytes()

    def parquet(self, location: Location, *, footer_only: bool = False) -> ParquetFile:
        return ParquetFile(location, str(_path(location)))

    def parquet_if_exists(self, location: Location) -> ParquetFile | None:
        return self.parquet(location) if _path(location).exists() else None

    def put(self, location: Location, data: bytes, only: IfMatch | None = None) -> None:
        write_bytes_atomic(_path(location), data)

    def put_parquet(self, location: Location, table: Any, options: dict[str, Any]) -> None:
        write_parquet_atomic(_path(location), table, **options)

    @contextlib.contextmanager
    def staging(self, location: Location, only: IfMatch | None = None) -> Iterator[Staging]:
        final = _path(location)
        with atomic_path(final) as tmp:
            yield _LocalStaging(final, tmp)

    def delete(self, locations: Sequence[Location]) -> None:
        remove_durably([_path(p) for p in locations])

    def move(self, source: Location, target: Location) -> None:
        src, dst = _path(source), _path(target)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        fsync_dir(dst.parent)
        fsync_dir(src.parent)

    def remove_tree(self, folder: Location) -> None:
        path = _path(folder)
        for inner in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                inner.unlink() if inner.is_file() else inner.rmdir()
        with contextlib.suppress(OSError):
            path.rmdir()

    def prune(self, folders: Iterable[Location]) -> None:
        for folder in folders:
            with contextlib.suppress(OSError):
                _path(folder).rmdir()

    def sweep(self, folder: Location) -> int:
        return sweep_temporaries(_path(folder))

    def torn_parquet(self, location: Location) -> str | None:
        return parquet_looks_whole(_path(location))

    def lock(self, lock_file: Location) -> WriterLock:
        return LakeLock(_path(lock_file))

    def arrow_files(self, locations: Sequence[Location]) -> tuple[Any, list[str]]:
        return None, [str(location) for location in locations]

    def attach(self, con: Any) -> None:
        return None


LOCAL = LocalStore()
