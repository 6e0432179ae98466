"""Ledgers of spans a part covers but does not settle, so a later run asks again.

Two ledgers per series, one mechanism:

- the **gap ledger** (``_state/gaps/…/gap-<a>-<b>.json``): what was asked for and
  could not be had. A request that keeps failing must never be counted as done
  (invariant 3); the command exits 4 while any remain.
- the **provisional ledger** (``_state/provisional/…/provisional-<a>-<b>.json``): what
  the source answered, but cannot yet have answered for good: buckets near the head
  of its data that came back empty, or candles it had not closed. A source that lags
  the client (an index still ingesting, a clock behind ours) would otherwise turn real
  candles into permanent holes. Provisional spans are normal near "now", not errors:
  the next run (or ``update``) asks again, and only then do they become confirmed.

A re-run must know what to ask again without a cursor, so each span is a small JSON
file named for the span it covers: the reason, how many runs recorded it, when first
and last. A span is in a ledger exactly as long as its file exists; a later fetch of
the span removes the file (keeping what is left of the span when the fetch covered
only part).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from hyperlake.lake.paths import SpanFileName
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.lake.store import Location, Store


@dataclass(frozen=True)
class Failure:
    """A span a fetch could not have (or could not have for good), and why."""

    span: Span
    reason: str


@dataclass(frozen=True)
class Gap:
    """A ledger entry: its span, its file, and what the file says."""

    span: Span
    path: Location
    info: dict[str, Any]


class SpanLedger:
    """The files of one ledger of one series."""

    def __init__(self, store: Store, folder: Location, names: SpanFileName,
                 series: str) -> None:
        self.store = store
        self.folder = folder
        self.names = names
        self.series = series  # how entries name the series (for a human reading them)

    def entries(self) -> list[Gap]:
        found = []
        for path in self.store.files(self.folder, "*"):
            span = self.names.parse(path.name)
            if span is not None:
                found.append(Gap(span, path, self._read_json(path)))
        return sorted(found, key=lambda g: g.span)

    def spans(self) -> RangeSet:
        return RangeSet(g.span for g in self.entries())

    def record(self, failure: Failure) -> None:
        path = self.folder / self.names.spell(failure.span)
        previous = self._read_json(path)
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
        self.store.put(path, orjson.dumps(entry, option=orjson.OPT_INDENT_2))

    def clear(self, fetched: Span, still_failed: set[Span]) -> None:
        """Remove entries ``fetched`` has now covered, keeping what lies outside it."""
        stale = []
        for gap in self.entries():
            if gap.span in still_failed or not gap.span.overlaps(fetched):
                continue
            for rest in RangeSet([gap.span]).subtract(RangeSet([fetched])):
                self.store.put(self.folder / self.names.spell(rest), orjson.dumps(
                    {**gap.info, "start": rest.start, "end": rest.end}))
            stale.append(gap.path)
        self.store.delete(stale)

    def split_at(self, cuts: Iterable[int]) -> None:
        """Cut every entry that spans one of ``cuts`` in two, each piece with the entry's
        information, so that writers of the spans either side of a cut (``hyperlake
        backfill``'s tasks, one per month, running at once) each clear entries of their
        own and never rewrite one file together. The pieces are written before the
        entry is removed: a crash leaves overlapping entries, which mean the same."""
        points = sorted(set(cuts))
        for gap in self.entries():
            inside = [c for c in points if gap.span.start < c < gap.span.end]
            if not inside:
                continue
            edges = [gap.span.start, *inside, gap.span.end]
            for start, end in itertools.pairwise(edges):
                self.store.put(self.folder / self.names.spell(Span(start, end)),
                               orjson.dumps({**gap.info, "start": start, "end": end},
                                            option=orjson.OPT_INDENT_2))
            self.store.delete([gap.path])

    def _read_json(self, path: Location) -> dict[str, Any]:
        """An entry's information; {} when missing or unreadable (its name is the
        entry: the span stays in the ledger either way)."""
        try:
            value = orjson.loads(self.store.read(path))
        except (OSError, orjson.JSONDecodeError):
            return {}
        return value if isinstance(value, dict) else {}
