"""The gap ledger: what was asked for and could not be had, so it is asked again.

A request that keeps failing must never be counted as done (invariant 3), and a
re-run must know what to retry without a cursor. So each failed span of a series is
a small JSON file under ``_state/gaps/…``, named for the span it covers
(``gap-<a>-<b>.json``): the reason, how many runs failed it, when first and last.
A span is in the ledger exactly as long as its file exists; a later fetch of the span
removes the file (keeping what is left of the span when the fetch covered only part).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from hyperlake.lake.atomic import remove_durably, write_bytes_atomic
from hyperlake.lake.paths import GAP
from hyperlake.lake.ranges import RangeSet, Span


@dataclass(frozen=True)
class Failure:
    """A span a fetch could not have, and why."""

    span: Span
    reason: str


@dataclass(frozen=True)
class Gap:
    """A ledger entry: its span, its file, and what the file says."""

    span: Span
    path: Path
    info: dict[str, Any]


class GapLedger:
    """The ledger files of one series."""

    def __init__(self, folder: Path, series: str) -> None:
        self.folder = folder
        self.series = series  # how entries name the series (for a human reading them)

    def entries(self) -> list[Gap]:
        found = []
        if self.folder.exists():
            for path in self.folder.iterdir():
                span = GAP.parse(path.name)
                if span is not None:
                    found.append(Gap(span, path, _read_json(path)))
        return sorted(found, key=lambda g: g.span)

    def spans(self) -> RangeSet:
        return RangeSet(g.span for g in self.entries())

    def record(self, failure: Failure) -> None:
        path = self.folder / GAP.spell(failure.span)
        previous = _read_json(path) if path.exists() else {}
        now = int(time.time() * 1000)
        entry = {
            "series": self.series,
            "start": failure.span.start,
            "end": failure.span.end,
            "reason": failure.reason,
            "runs": int(previous.get("runs", 0)) + 1,
            "first_failed_at": previous.get("first_failed_at", now),
            "last_failed_at": now,
        }
        write_bytes_atomic(path, orjson.dumps(entry, option=orjson.OPT_INDENT_2))

    def clear(self, fetched: Span, still_failed: set[Span]) -> None:
        """Remove entries ``fetched`` has now covered, keeping what lies outside it."""
        stale = []
        for gap in self.entries():
            if gap.span in still_failed or not gap.span.overlaps(fetched):
                continue
            for rest in RangeSet([gap.span]).subtract(RangeSet([fetched])):
                write_bytes_atomic(self.folder / GAP.spell(rest), orjson.dumps(
                    {**gap.info, "start": rest.start, "end": rest.end}))
            stale.append(gap.path)
        remove_durably(stale)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
