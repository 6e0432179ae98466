"""``hyperlake status``: where each series of a lake stands, without reading a row.

Everything comes from names and small state files: checkpoint part names and coverage
markers (what is covered), the gap and provisional ledgers, the row index compaction
keeps (``_state/rows``: rows and first/last key of each partition, from footers), the
last ``update`` run's record and a streamer's ``status.json``. No Parquet file is
opened, so a year-long lake of hundreds of series answers in well under a second, and
nothing is written or locked: it is safe beside a running update or stream.

Per (dataset, market, interval): the first and last bar (row index; else the covered
extent), the lag of the covered data behind now, buckets missing (holes inside the
covered extent, and the closed buckets after it), confirmed empty (covered and
compacted, but no row), in the gap ledger, provisional, and parts awaiting compaction.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import orjson

from hyperlake.lake.checkpoints import Series
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import RangeSet, Span, buckets_in
from hyperlake.lake.row_index import read_row_index
from hyperlake.lake.store import Location, Store
from hyperlake.schemas.intervals import bucket_start, is_interval
from hyperlake.schemas.vocabulary import Dataset

#: The datasets status reports, in order.
REPORTED: tuple[Dataset, ...] = ("candles", "funding", "asset_ctxs", "trades")


@dataclass
class SeriesStatus:
    dataset: Dataset
    market: str
    interval: str
    sources: tuple[str, ...]
    first_ms: int | None
    last_ms: int | None
    covered_to: int | None  # end of the covered extent
    lag_ms: int | None
    missing: int | None  # None: not a bucketed series
    empty: int | None  # None: unknown (no row index for the compacted days)
    gaps: int
    provisional: int
    pending_parts: int
    rows: int | None

    def as_dict(self) -> dict[str, object]:
        from hyperlake.schemas.times import format_instant

        def instant(ms: int | None) -> str | None:
            return None if ms is None else format_instant(ms)

        return {"dataset": self.dataset, "market": self.market, "interval": self.interval,
                "sources": list(self.sources), "first": instant(self.first_ms),
                "last": instant(self.last_ms), "covered_to": instant(self.covered_to),
                "lag_s": None if self.lag_ms is None else round(self.lag_ms / 1000, 1),
                "missing": self.missing, "empty": self.empty, "gaps": self.gaps,
                "provisional": self.provisional, "pending_parts": self.pending_parts,
                "rows": self.rows}


@dataclass
class LakeStatus:
    root: Location
    now_ms: int
    series: list[SeriesStatus]
    last_run: dict[str, Any] | None
    stream: dict[str, Any] | None

    def as_dict(self) -> dict[str, object]:
        return {"lake": str(self.root), "series": [s.as_dict() for s in self.series],
                "last_update": self.last_run, "stream": self.stream}


def _read_json(store: Store, path: Location) -> dict[str, Any] | None:
    try:
        value = orjson.loads(store.read(path))
    except (OSError, orjson.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def stream_health(paths: LakePaths, wall_now: float) -> dict[str, Any] | None:
    """The streamer's own status file, with whether its process is alive and how old
    the file is (it is rewritten every few seconds while it runs)."""
    status = _read_json(paths.store, paths.stream_status)
    if status is None:  # no streamer has run here: nothing more to ask the store
        return None
    written = paths.store.stat(paths.stream_status)
    if written is None:
        return None
    age = wall_now - written.modified
    pid = status.get("pid")
    alive = False
    if isinstance(pid, int) and pid > 0:
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
    keys = ("now", "started", "last_frame", "connections", "reconnects", "trades", "bars",
            "awaiting_repair")
    return {"alive": alive, "status_age_s": round(age, 1),
            **{k: status[k] for k in keys if k in status}}


def series_status(paths: LakePaths, dataset: Dataset, market: str, interval: str,
                  sources: list[str], now_ms: int) -> SeriesStatus:
    covered, compacted, gaps, provisional = RangeSet(), RangeSet(), RangeSet(), RangeSet()
    done, pending = RangeSet(), 0
    for source in sources:
        series = Series(paths, SeriesKey(dataset, source, market, interval))
        parts = series.parts()
        pending += len(parts)
        marked = series.compacted()
        compacted = compacted.union(marked)
        covered = covered.union(RangeSet(span for span, _ in parts)).union(marked)
        gaps = gaps.union(series.ledger.spans())
        provisional = provisional.union(series.provisional.spans())
        done = done.union(series.done())
    index = read_row_index(paths.store, paths.row_index(dataset, market, interval))
    rows = sum(v[0] for v in index.values()) if index else None
    firsts = [v[1] for v in index.values() if v[0] > 0 and v[1] >= 0]
    lasts = [v[2] for v in index.values() if v[0] > 0 and v[2] >= 0]
    extent_start = covered.spans[0].start if covered else None
    covered_to = covered.spans[-1].end if covered else None
    bucketed = is_interval(interval)
    first = min(firsts) if firsts else extent_start
    last = max(lasts) if lasts else None
    missing = empty = None
    if bucketed:
        known = covered.union(gaps)
        holes = RangeSet([Span(known.spans[0].start, known.spans[-1].end)]).subtract(known) \
            if known else RangeSet()
        head = bucket_start(now_ms, interval)
        tail = RangeSet([Span(covered_to, head)]) if covered_to is not None and \
            covered_to < head else RangeSet()
        missing = buckets_in(holes.union(tail), interval)
        if rows is not None:
            empty = max(0, buckets_in(compacted, interval) - rows)
    lag = None if covered_to is None else max(0, now_ms - covered_to)
    if not bucketed and last is not None:
        lag = max(0, now_ms - last)
    unsettled = gaps.subtract(done) if bucketed else RangeSet()
    return SeriesStatus(dataset, market, interval, tuple(sources), first, last, covered_to,
                        lag, missing, empty, buckets_in(unsettled, interval) if bucketed else 0,
                        buckets_in(provisional, interval) if bucketed else 0, pending, rows)


def lake_status(root: Location, now_ms: int, market: str | None = None) -> LakeStatus:
    """Every series of the lake (of ``market`` when given), from names and state files."""
    paths = LakePaths(root)
    found: list[SeriesStatus] = []
    for dataset in REPORTED:
        groups: dict[tuple[str, str], set[str]] = {}
        for key in paths.state_keys(dataset):
            groups.setdefault((key.market, key.interval), set()).add(key.source)
        for pair in paths.lake_series(dataset):
            groups.setdefault(pair, set())
        for (name, interval), sources in sorted(groups.items()):
            if market is None or name == market:
                found.append(series_status(paths, dataset, name, interval, sorted(sources),
                                           now_ms))
    return LakeStatus(root, now_ms, found, _read_json(paths.store, paths.update_record),
                      stream_health(paths, time.time()))
