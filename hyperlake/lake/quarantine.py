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
truncated write fails it without reading a row. (On an object store every object was
written by one atomic PUT, so none can be torn that way, and the test asks nothing: a
damaged object is still caught when it is read.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hyperlake.lake.local import parquet_looks_whole
from hyperlake.lake.paths import LakePaths
from hyperlake.lake.store import Location, relative

__all__ = ["Quarantined", "parquet_looks_whole", "quarantine"]

@dataclass(frozen=True)
class Quarantined:
    """A file moved aside: where it was, where it is, and why."""

    original: Location
    moved_to: Location
    reason: str

    def line(self, root: Location) -> str:
        return (f"quarantined {relative(self.original, root)} → "
                f"{relative(self.moved_to, root)} ({self.reason}); what it covered will "
                "be fetched again")


def quarantine(paths: LakePaths, path: Location, reason: str) -> Quarantined:
    """Move ``path`` under ``_quarantine/`` (durably); the caller drops its coverage."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = paths.quarantine / f"{relative(path, paths.root)}.{stamp}"
    paths.store.move(path, target)
    return Quarantined(path, target, reason)
