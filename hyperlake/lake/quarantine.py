"""A file that cannot be read is moved aside, never merged over and never deleted.

One truncated checkpoint part or partition must not wedge the lake: compaction would
fail on it forever, extraction would trust its name ("already complete"). So the
stage that meets it moves it under ``_quarantine/`` (same relative path, a UTC stamp
appended), says so in one line, and carries on; what the file covered is no longer
claimed — a part's name was its coverage, and a partition's date is dropped from the
coverage markers — so the next extract run fetches it again. The moved file stays
for a human to inspect; nothing reads ``_quarantine/``.

Reading a file to find out is not free, so a cheap test comes first: a Parquet file
starts and ends with the magic ``PAR1`` and a footer no longer than the file; a
truncated write fails it without reading a row.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from hyperlake.lake.atomic import fsync_dir
from hyperlake.lake.paths import LakePaths

MAGIC = b"PAR1"
_TAIL = 8  # footer length (4 bytes, little endian) + magic


@dataclass(frozen=True)
class Quarantined:
    """A file moved aside: where it was, where it is, and why."""

    original: Path
    moved_to: Path
    reason: str

    def line(self, root: Path) -> str:
        return (f"quarantined {_relative(self.original, root)} → "
                f"{_relative(self.moved_to, root)} ({self.reason}); what it covered will "
                "be fetched again")


def parquet_looks_whole(path: Path) -> str | None:
    """None when ``path`` has a Parquet file's head and tail, else what is wrong."""
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


def quarantine(paths: LakePaths, path: Path, reason: str) -> Quarantined:
    """Move ``path`` under ``_quarantine/`` (durably); the caller drops its coverage."""
    relative = path.relative_to(paths.root)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = paths.quarantine / relative.parent / f"{relative.name}.{stamp}"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    fsync_dir(target.parent)
    fsync_dir(path.parent)
    return Quarantined(path, target, reason)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
