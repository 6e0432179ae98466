"""Atomic file creation: a visible file is always complete.

Write a temporary file in the destination folder, fsync it, ``os.replace`` it onto
the final name, then fsync the folder so the rename itself is durable. A crash at
any instant leaves either the old file, the new file, or a stray ``.tmp-*`` that
readers ignore and ``sweep_temporaries`` removes.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path_for(final: Path) -> Path:
    """A hidden name that no ``*.parquet`` glob of a reader can match."""
    return final.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{final.name}.partial")


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success it becomes ``final``."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(final)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes_atomic(final: Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_with_atomic(final: Path, writer: Callable[[Path], None]) -> None:
    with atomic_path(final) as tmp:
        writer(tmp)


def write_parquet_atomic(final: Path, table: Any, **options: object) -> None:
    """``table`` is a pyarrow Table (imported lazily: this module stays light)."""
    import pyarrow.parquet as pq

    with atomic_path(final) as tmp:
        pq.write_table(table, tmp, **options)


def remove_durably(paths: list[Path]) -> None:
    """Delete files and make the deletions durable (one fsync per folder)."""
    folders = set()
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            folders.add(path.parent)
    for folder in folders:
        fsync_dir(folder)


def sweep_temporaries(folder: Path) -> int:
    """Remove leftovers of interrupted atomic writes under ``folder``."""
    removed = 0
    if folder.exists():
        for tmp in folder.rglob(f"{TMP_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed += 1
    return removed
