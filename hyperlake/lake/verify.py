"""Verification: does the lake hold what its own files say it holds?

Extraction and compaction each check their step, but a lake is also copied,
restored, edited by hand, or left by a run killed at an unlucky instant. So verify
trusts no summary: it re-derives every finding from files — partition rows on one
side; checkpoint parts, coverage markers (``_state/coverage``) and the gap ledger on
the other — per (dataset, market, interval), and per source where the state is kept
per source (coverage, ledger; rows carry a ``source`` column and are counted by it).

What is found, and how much it weighs:

violation (exit 1)  two rows with one key; rows outside their partition's date; rows
                    failing sanity (candles: l <= min(o, c), max(o, c) <= h, v >= 0,
                    n >= 0, t on the bucket grid, t_close = next bucket - 1; funding:
                    funding_hour = time floored to the hour); failed buckets in the
                    gap ledger; never-fetched holes inside the covered extent; two
                    funding rows in one hour; partition files that cannot be read.
warning             funding hours missing between the series' first and last row;
                    off-hour funding rows; rows that no coverage accounts for.
info                buckets the source confirmed empty (covered, no row); buckets
                    whose rows still sit in checkpoints, awaiting ``hyperlake compact``.

Funding cadence findings are warnings, not violations, because they describe the
exchange rather than a defect of the lake: the real 2023 history has a missing hour
(2023-07-02T20:00Z) and rows 5 s and 23 min after their hour. The cadence is one
row per hour from 2023-06-08 (``HOURLY_FUNDING_FROM_MS``) and one per 8 hours
before; a row more than ``OFF_HOUR_TOLERANCE_MS`` after its hour, or on a non-8-hour
boundary before 2023-06-08, is off-hour. Covered funding hours before the first row
or after the last one (before a listing, after a delisting) are only "empty".

Memory stays bounded: partitions are read one UTC date at a time, only the columns
a check needs, and the expected buckets are enumerated one day at a time; what is
kept across partitions is counters, the first few offending keys, and the keys of
misplaced rows (capped) to look for their twins in the partition they belong to.

No lock is taken: every file verify reads is replaced atomically, and a series'
parts are listed before its coverage markers (compaction writes markers before it
deletes parts), so a concurrent compaction cannot hide covered spans. Findings can
be a moment stale while another run writes.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hyperlake.emulator.market import HOURLY_FUNDING_FROM_MS
from hyperlake.errors import UserError
from hyperlake.lake.atomic import TMP_PREFIX
from hyperlake.lake.checkpoints import Series, SeriesKey
from hyperlake.lake.compaction import DATASETS, days_of
from hyperlake.lake.paths import LakePaths, decode_value
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.schemas.candles import TS
from hyperlake.schemas.intervals import (
    ALL_INTERVALS,
    DAY_MS,
    FIXED_STEP_MS,
    HOUR_MS,
    bucket_opens,
    bucket_start,
    is_interval,
    next_bucket,
)
from hyperlake.schemas.times import format_instant

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

#: Offending keys kept per finding (the earliest ones).
FIRST_KEYS = 5
#: A funding row later than this after its hour is off-hour (real rows land < 2 s after).
OFF_HOUR_TOLERANCE_MS = 5_000
#: Before 2023-06-08 funding was paid every 8 hours.
EIGHT_HOURS_MS = 8 * HOUR_MS
#: Misplaced-row keys remembered for the cross-partition duplicate check.
MAX_TRACKED_MISPLACED = 1_000_000

VIOLATION, WARNING, INFO = "violation", "warning", "info"

_CANDLE_COLUMNS = ["t", "t_close", "o", "h", "l", "c", "v", "n", "source"]
_FUNDING_COLUMNS = ["time", "funding_hour", "source"]


class SeriesId(NamedTuple):
    dataset: str
    market: str
    interval: str

    def describe(self) -> str:
        return f"{self.dataset} {self.market} {self.interval}"


# -- findings ---------------------------------------------------------------------------


@dataclass
class Finding:
    """One check's result: a count, the earliest offenders, optional breakdown."""

    severity: str
    label: str
    unit: str
    count: int = 0
    first: list[tuple[int, str]] = field(default_factory=list)  # (sort key, text)
    detail: Counter[str] = field(default_factory=Counter)

    def add(self, count: int, examples: Iterable[tuple[int, str]] = ()) -> None:
        self.count += count
        self.first = sorted({*self.first, *examples})[:FIRST_KEYS]

    def add_keys(self, keys: I64) -> None:
        """Offending rows (or buckets) named by their key."""
        head = distinct(keys)[:FIRST_KEYS].tolist()
        self.add(len(keys), ((k, format_instant(k)) for k in head))

    def add_spans(self, spans: RangeSet, interval: str) -> None:
        head = list(spans)[:FIRST_KEYS]
        self.add(bucket_count(spans, interval), ((s.start, _span_text(s)) for s in head))

    @property
    def weight(self) -> int:
        """What the finding adds to the violations (or warnings) of its series."""
        return self.count if self.severity != INFO else 0

    def to_dict(self) -> dict[str, object]:
        return {"severity": self.severity, "count": self.count, "unit": self.unit,
                "first": [text for _, text in self.first], "detail": dict(self.detail)}


def _findings(dataset: str) -> dict[str, Finding]:
    bucket = "hours" if dataset == "funding" else "buckets"
    sanity = ("rows whose funding_hour is not time floored" if dataset == "funding"
              else "rows failing OHLC sanity")
    found = {
        "empty": Finding(INFO, "empty, confirmed by the source", bucket),
        "pending": Finding(INFO, "in checkpoints, not compacted yet", bucket),
        "failed": Finding(VIOLATION, "failed, in the gap ledger", bucket),
        "holes": Finding(VIOLATION, "never fetched, inside the extent", bucket),
        "duplicates": Finding(VIOLATION, "rows sharing a key", "rows"),
        "misplaced": Finding(VIOLATION, "rows outside their partition's date", "rows"),
        "bad_rows": Finding(VIOLATION, sanity, "rows"),
        "unreadable": Finding(VIOLATION, "partitions that cannot be read", "partitions"),
        "uncovered_rows": Finding(WARNING, "rows outside any recorded coverage", "rows"),
    }
    if dataset == "funding":
        found["missing_hours"] = Finding(WARNING, "funding hours missing between rows", "hours")
        found["off_hour"] = Finding(WARNING, "off-hour funding rows", "rows")
        found["duplicate_hours"] = Finding(VIOLATION, "funding hours with several rows",
                                           "hours")
    return found


# -- reports ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceState:
    """What one source's files say about a series."""

    source: str
    covered: RangeSet  # checkpoint parts and coverage markers
    pending: RangeSet  # parts that no marker covers yet: rows not in the lake yet
    failed: RangeSet  # the gap ledger
    confirmed: RangeSet  # compacted and not failed: rows, or confirmed emptiness

    @classmethod
    def read(cls, series: Series) -> SourceState:
        parts = RangeSet(span for span, _ in series.parts())  # before the markers
        compacted = series.compacted()
        failed = RangeSet(gap.span for gap in series.gaps())
        return cls(series.key.source, parts.union(compacted), parts.subtract(compacted),
                   failed, compacted.subtract(failed))


@dataclass
class SeriesReport:
    sid: SeriesId
    sources: list[SourceState]
    findings: dict[str, Finding]
    rows: int = 0
    partitions: int = 0
    rows_by_source: Counter[str] = field(default_factory=Counter)

    @property
    def covered(self) -> RangeSet:
        return _union(s.covered for s in self.sources)

    @property
    def violations(self) -> int:
        return sum(f.weight for f in self.findings.values() if f.severity == VIOLATION)

    @property
    def warnings(self) -> int:
        return sum(f.weight for f in self.findings.values() if f.severity == WARNING)

    def to_dict(self) -> dict[str, object]:
        interval = self.sid.interval
        return {
            "dataset": self.sid.dataset, "market": self.sid.market, "interval": interval,
            "ok": self.violations == 0, "violations": self.violations,
            "warnings": self.warnings, "rows": self.rows, "partitions": self.partitions,
            "rows_by_source": dict(sorted(self.rows_by_source.items())),
            "coverage": extent_dict(self.covered, interval),
            "sources": {s.source: {**extent_dict(s.covered, interval),
                                   "pending": bucket_count(s.pending, interval),
                                   "failed": bucket_count(s.failed, interval)}
                        for s in self.sources},
            "findings": {name: f.to_dict() for name, f in self.findings.items()},
        }


@dataclass
class LakeReport:
    lake: Path
    series: list[SeriesReport]

    @property
    def violations(self) -> int:
        return sum(s.violations for s in self.series)

    @property
    def warnings(self) -> int:
        return sum(s.warnings for s in self.series)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"lake": str(self.lake), "ok": self.violations == 0,
                                  "violations": self.violations, "warnings": self.warnings,
                                  "series": [s.to_dict() for s in self.series]}
        if not self.series:
            out["message"] = "nothing to verify"
        return out


# -- bucket arithmetic --------------------------------------------------------------------


def _union(sets: Iterable[RangeSet]) -> RangeSet:
    return RangeSet(span for rs in sets for span in rs)


def _span_text(span: Span) -> str:
    return f"{format_instant(span.start)}/{format_instant(span.end)}"


def _first_open(ms: int, interval: str) -> int:
    start = bucket_start(ms, interval)
    return start if start >= ms else next_bucket(start, interval)


def opens_in(lo: int, hi: int, interval: str) -> I64:
    """Open times of the buckets that open in [lo, hi), as an array."""
    if interval not in FIXED_STEP_MS:
        return np.asarray(bucket_opens(lo, hi, interval), dtype=np.int64)
    return np.arange(_first_open(lo, interval), hi, FIXED_STEP_MS[interval], dtype=np.int64)


def bucket_count(spans: RangeSet, interval: str) -> int:
    """Buckets opening in the spans (0 for a name that is no interval)."""
    if not is_interval(interval):
        return 0
    total = 0
    for span in spans:
        if interval not in FIXED_STEP_MS:
            total += len(bucket_opens(span.start, span.end, interval))
            continue
        first, step = _first_open(span.start, interval), FIXED_STEP_MS[interval]
        total += max(0, -(-(span.end - first) // step))
    return total


def extent_dict(spans: RangeSet, interval: str) -> dict[str, object]:
    """First and last bucket (ISO), bucket count and span count of a coverage."""
    if not spans or not is_interval(interval):
        return {"first": None, "last": None, "buckets": 0, "spans": len(spans.spans)}
    last = bucket_start(spans.spans[-1].end - 1, interval)
    return {"first": format_instant(spans.spans[0].start), "last": format_instant(last),
            "buckets": bucket_count(spans, interval), "spans": len(spans.spans)}


def inside(keys: I64, spans: RangeSet) -> Mask:
    """Which keys fall in one of the (sorted, disjoint) spans."""
    if not spans or len(keys) == 0:
        return np.zeros(len(keys), dtype=np.bool_)
    starts = np.asarray([s.start for s in spans], dtype=np.int64)
    ends = np.asarray([s.end for s in spans], dtype=np.int64)
    index = np.searchsorted(starts, keys, side="right") - 1
    found = index >= 0
    found[found] = keys[found] < ends[index[found]]
    return found


def grid_starts(keys: I64, interval: str) -> I64:
    """The bucket open of each key (vectorised ``bucket_start``)."""
    if interval not in FIXED_STEP_MS:
        return np.asarray([bucket_start(k, interval) for k in keys.tolist()], dtype=np.int64)
    step = FIXED_STEP_MS[interval]
    offset = bucket_start(0, interval) % step  # 1w: weeks open on Monday
    return (keys - offset) // step * step + offset


def grid_next(keys: I64, interval: str) -> I64:
    """``next_bucket`` of each key."""
    if interval not in FIXED_STEP_MS:
        return np.asarray([next_bucket(k, interval) for k in keys.tolist()], dtype=np.int64)
    return keys + FIXED_STEP_MS[interval]


def is_funding_hour(hours: I64) -> Mask:
    result: Mask = (hours >= HOURLY_FUNDING_FROM_MS) | (hours % EIGHT_HOURS_MS == 0)
    return result


def distinct(keys: I64) -> I64:
    """Sorted distinct keys (sorting beats ``np.unique``'s hashing on int64 keys)."""
    ordered = np.sort(keys)
    if len(ordered) < 2:
        return ordered
    first: I64 = ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
    return first


def member(values: I64, pool: I64) -> Mask:
    """Which values are in ``pool`` (by binary search of the sorted pool)."""
    if len(pool) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=np.bool_)
    ordered = np.sort(pool)
    index = np.minimum(np.searchsorted(ordered, values), len(ordered) - 1)
    found: Mask = ordered[index] == values
    return found


def repeated(keys: I64) -> I64:
    """Keys that occur more than once, one entry per extra occurrence."""
    ordered = np.sort(keys)
    extra: I64 = ordered[1:][ordered[1:] == ordered[:-1]]
    return extra


# -- reading partitions -------------------------------------------------------------------


def _ms(column: pa.ChunkedArray) -> I64:
    """Timestamps (any unit the cast accepts) as epoch ms; a null becomes -1."""
    ints = pc.fill_null(column.cast(TS).cast(pa.int64()), -1)
    return np.asarray(ints.to_numpy(), dtype=np.int64)


def _f64(table: pa.Table, name: str) -> F64:
    """A numeric column as float64; a null becomes NaN (and fails every comparison)."""
    return np.asarray(table.column(name).cast(pa.float64()).to_numpy(), dtype=np.float64)


def _day_of(folder: Path) -> int | None:
    try:
        day = dt.date.fromisoformat(folder.name.removeprefix("date="))
    except ValueError:
        return None
    return (day - dt.date(1970, 1, 1)).days


def _lake_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith(TMP_PREFIX))


def partition_folders(paths: LakePaths, sid: SeriesId) -> list[Path]:
    parent = paths.partition(sid.dataset, sid.market, sid.interval, "-").parent
    if not parent.is_dir():
        return []
    return sorted(d for d in parent.glob("date=*") if d.is_dir() and _lake_files(d))


def read_partition(folder: Path, columns: list[str]) -> pa.Table:
    """Every lake file of one partition (normally just part-0.parquet), some columns.
    Raises OSError or pyarrow.ArrowException when a file cannot be read."""
    tables = [pq.read_table(path, columns=columns) for path in _lake_files(folder)]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


# -- one series ---------------------------------------------------------------------------


class SeriesCheck:
    """Scans one series' partitions in date order and fills its report."""

    def __init__(self, paths: LakePaths, sid: SeriesId, sources: list[str]) -> None:
        self.sid = sid
        self.key = DATASETS[sid.dataset].key
        self.funding = sid.dataset == "funding"
        self.columns = _FUNDING_COLUMNS if self.funding else _CANDLE_COLUMNS
        states = [SourceState.read(Series(paths, SeriesKey(sid.dataset, s, sid.market,
                                                           sid.interval))) for s in sources]
        self.report = SeriesReport(sid, states, _findings(sid.dataset))
        self.f = self.report.findings
        self.covered = self.report.covered
        self.failed = _union(s.failed for s in states)
        self.confirmed = _union(s.confirmed for s in states)
        self.folders = partition_folders(paths, sid)
        self.misplaced: dict[int, list[I64]] = defaultdict(list)
        self.tracked = 0
        self.row_window: tuple[int, int] | None = None

    def run(self) -> SeriesReport:
        if not is_interval(self.sid.interval):
            self._unknown_interval()
            return self.report
        self._state_findings()
        by_day = {day: f for f in self.folders if (day := _day_of(f)) is not None}
        self.row_window = self._row_window([by_day[d] for d in sorted(by_day)])
        days = {d for span in self.confirmed for d in days_of(span)} | set(by_day)
        for day in sorted(days):
            self._day(day, by_day.get(day))
        for folder in self.folders:
            if _day_of(folder) is None:
                self._partition(folder, None)
        self._misplaced_twins(by_day)
        return self.report

    def _unknown_interval(self) -> None:
        """A folder the pipelines cannot have written: its rows cannot be checked."""
        text = f"interval={self.sid.interval}: not an interval"
        self.f["unreadable"].add(max(1, len(self.folders)), [(0, text)])

    # state files

    def _state_findings(self) -> None:
        interval = self.sid.interval
        for state in self.report.sources:
            self.f["pending"].add_spans(state.pending, interval)
            self.f["failed"].add_spans(state.failed, interval)
            if state.failed:
                self.f["failed"].detail[state.source] += bucket_count(state.failed, interval)
        known = self.covered.union(self.failed)
        if known:
            hull = RangeSet([Span(known.spans[0].start, known.spans[-1].end)])
            self.f["holes"].add_spans(hull.subtract(known), interval)

    def _row_window(self, folders: list[Path]) -> tuple[int, int] | None:
        """Earliest and latest key of the series (first and last partition)."""
        if not self.funding or not folders:
            return None
        try:
            first = _ms(read_partition(folders[0], [self.key]).column(self.key))
            last = _ms(read_partition(folders[-1], [self.key]).column(self.key))
        except (OSError, pa.ArrowException):
            return None
        if len(first) == 0 or len(last) == 0:
            return None
        return int(first.min()), int(last.max())

    # partitions

    def _day(self, day: int, folder: Path | None) -> None:
        present: I64 = np.zeros(0, dtype=np.int64)
        if folder is not None:
            keys = self._partition(folder, day)
            if keys is None:
                return  # unreadable: its buckets are neither present nor empty
            present = keys // HOUR_MS * HOUR_MS if self.funding else keys
        self._empties(day, present)

    def _partition(self, folder: Path, day: int | None) -> I64 | None:
        """Check one partition's rows; its keys, or None when it cannot be read."""
        try:
            table = read_partition(folder, self.columns)
        except (OSError, pa.ArrowException) as exc:
            self.f["unreadable"].add(1, [(day or 0, f"{folder.name}: {exc}".splitlines()[0])])
            return None
        self.report.partitions += 1
        self.report.rows += table.num_rows
        self.report.rows_by_source.update(_value_counts(table.column("source")))
        table = self._drop_null_keys(table, folder)
        keys = _ms(table.column(self.key))
        self.f["duplicates"].add_keys(repeated(keys))
        self._misplaced_rows(keys, day)
        self.f["uncovered_rows"].add_keys(keys[~inside(keys, self.covered)])
        if self.funding:
            self._funding_rows(table, keys)
        else:
            self._candle_rows(table, keys)
        return keys

    def _drop_null_keys(self, table: pa.Table, folder: Path) -> pa.Table:
        nulls = table.column(self.key).null_count
        if not nulls:
            return table
        self.f["bad_rows"].add(nulls, [(-1, f"{folder.name}: {self.key} is null")])
        self.f["bad_rows"].detail[f"{self.key} is null"] += nulls
        return table.filter(pc.is_valid(table.column(self.key)))

    def _misplaced_rows(self, keys: I64, day: int | None) -> None:
        wrong = keys if day is None else keys[keys // DAY_MS != day]
        self.f["misplaced"].add_keys(wrong)
        if len(wrong) and self.tracked + len(wrong) <= MAX_TRACKED_MISPLACED:
            self.tracked += len(wrong)
            for home in distinct(wrong // DAY_MS).tolist():
                self.misplaced[home].append(wrong[wrong // DAY_MS == home])

    def _misplaced_twins(self, by_day: dict[int, Path]) -> None:
        """A misplaced row whose key is also in its own date's partition (or in another
        misplaced row) is a duplicate across partitions."""
        for home, chunks in sorted(self.misplaced.items()):
            keys = np.concatenate(chunks)
            twins = [repeated(keys)]
            folder = by_day.get(home)
            if folder is not None:
                try:
                    own = _ms(read_partition(folder, [self.key]).column(self.key))
                except (OSError, pa.ArrowException):
                    own = np.zeros(0, dtype=np.int64)  # already reported unreadable
                twins.append(keys[member(keys, own)])
            self.f["duplicates"].add_keys(np.concatenate(twins))

    def _candle_rows(self, table: pa.Table, keys: I64) -> None:
        failures = candle_failures(table, keys, self.sid.interval)
        self._bad_rows(keys, failures)

    def _bad_rows(self, keys: I64, failures: dict[str, Mask]) -> None:
        any_bad = np.zeros(len(keys), dtype=np.bool_)
        for reason, mask in failures.items():
            if mask.any():
                self.f["bad_rows"].detail[reason] += int(mask.sum())
                any_bad |= mask
        self.f["bad_rows"].add_keys(keys[any_bad])

    def _funding_rows(self, table: pa.Table, keys: I64) -> None:
        hours = keys // HOUR_MS * HOUR_MS
        stored = _ms(table.column("funding_hour"))
        self._bad_rows(keys, {"funding_hour != time floored to the hour": stored != hours})
        late = keys - hours > OFF_HOUR_TOLERANCE_MS
        off_grid = ~is_funding_hour(hours)
        off = self.f["off_hour"]
        reasons = {f"more than {OFF_HOUR_TOLERANCE_MS // 1000} s after the hour": late,
                   "not on an 8-hour boundary before 2023-06-08": off_grid}
        for reason, mask in reasons.items():
            if mask.any():
                off.detail[reason] += int(mask.sum())
        off.add_keys(keys[late | off_grid])
        self.f["duplicate_hours"].add_keys(repeated(distinct(keys) // HOUR_MS * HOUR_MS))

    # empty buckets

    def _expected(self, day: int) -> I64:
        """Buckets of ``day`` whose rows (or emptiness) the state says are in the lake."""
        lo, hi = day * DAY_MS, (day + 1) * DAY_MS
        chunks = [opens_in(max(s.start, lo), min(s.end, hi), self.sid.interval)
                  for s in self.confirmed if s.start < hi and lo < s.end]
        if not chunks:
            return np.zeros(0, dtype=np.int64)
        expected = np.concatenate(chunks)
        return expected[is_funding_hour(expected)] if self.funding else expected

    def _empties(self, day: int, present: I64) -> None:
        empty = self._expected(day)
        empty = empty[~member(empty, present)]
        if self.funding and self.row_window is not None:
            first, last = self.row_window
            between = (empty >= first // HOUR_MS * HOUR_MS) & (empty <= last)
            self.f["missing_hours"].add_keys(empty[between])
            empty = empty[~between]
        self.f["empty"].add_keys(empty)


def candle_failures(table: pa.Table, keys: I64, interval: str) -> dict[str, Mask]:
    """Per sanity rule, which rows break it (NaN breaks every rule it is part of)."""
    o, h, low, c = (_f64(table, name) for name in ("o", "h", "l", "c"))
    v, n = _f64(table, "v"), _f64(table, "n")
    t_close = _ms(table.column("t_close"))
    return {
        "l > min(o, c)": ~(low <= np.minimum(o, c)),
        "h < max(o, c)": ~(np.maximum(o, c) <= h),
        "v < 0": ~(v >= 0),
        "n < 0": ~(n >= 0),
        "t not on the bucket grid": grid_starts(keys, interval) != keys,
        "t_close != next bucket - 1": t_close != grid_next(keys, interval) - 1,
    }


def _value_counts(column: pa.ChunkedArray) -> Counter[str]:
    counts: Counter[str] = Counter()
    for item in pc.value_counts(column).to_pylist():
        counts[str(item["values"])] += int(item["counts"])
    return counts


# -- the lake -----------------------------------------------------------------------------


def _decode_folder(folder: Path) -> tuple[str, str]:
    """(market, interval) of a ``market=…/interval=…`` folder."""
    return (decode_value(folder.parent.name.removeprefix("market=")),
            decode_value(folder.name.removeprefix("interval=")))


def discover(paths: LakePaths, datasets: Iterable[str]) -> dict[SeriesId, set[str]]:
    """Every series with partitions, checkpoint parts, coverage or ledger entries, and
    the sources whose state files mention it."""
    found: dict[SeriesId, set[str]] = defaultdict(set)
    for dataset in datasets:
        for folder in sorted(paths.dataset(dataset).glob("market=*/interval=*")):
            sid = SeriesId(dataset, *_decode_folder(folder))
            if partition_folders(paths, sid):
                found.setdefault(sid, set())
        state_roots = (paths.state / "coverage" / dataset, paths.state / "gaps" / dataset,
                       paths.checkpoints(dataset))
        for root in state_roots:
            for folder in sorted(root.glob("*/market=*/interval=*")):
                sid = SeriesId(dataset, *_decode_folder(folder))
                series = Series(paths, SeriesKey(dataset, folder.parent.parent.name,
                                                 sid.market, sid.interval))
                if series.covered() or series.gaps():
                    found[sid].add(series.key.source)
    return dict(found)


def _listing(names: Iterable[str], limit: int = 20) -> str:
    ordered = list(names)
    shown = ", ".join(ordered[:limit])
    return shown if len(ordered) <= limit else f"{shown}, … ({len(ordered)} in all)"


def _resolve_market(text: str, markets: set[str], lake: Path) -> str:
    """Exact name first, then a unique case-insensitive match (``btc`` → ``BTC``)."""
    if text in markets:
        return text
    folded = [m for m in markets if m.casefold() == text.casefold()]
    if len(folded) == 1:
        return folded[0]
    raise UserError(f"--market {text!r}: not in the lake {lake}; it has "
                    f"{_listing(sorted(markets))}")


def _interval_order(name: str) -> tuple[int, str]:
    return (ALL_INTERVALS.index(name) if name in ALL_INTERVALS else len(ALL_INTERVALS), name)


def select(ids: Iterable[SeriesId], market: str | None, interval: str | None,
           lake: Path) -> list[SeriesId]:
    """The series ``--market`` and ``--interval`` ask for; UserError when the lake has
    none, listing what it has."""
    chosen = sorted(ids, key=lambda s: (s.dataset, s.market, _interval_order(s.interval)))
    if market is not None:
        name = _resolve_market(market, {s.market for s in chosen}, lake)
        chosen = [s for s in chosen if s.market == name]
    if interval is not None:
        have = sorted({s.interval for s in chosen}, key=_interval_order)
        if interval not in have:
            where = f" for {chosen[0].market}" if market is not None else ""
            raise UserError(f"--interval {interval!r}: not in the lake {lake}{where}; it has "
                            f"{_listing(have)}")
        chosen = [s for s in chosen if s.interval == interval]
    return chosen


def verify_lake(root: Path, datasets: Iterable[str] = ("candles", "funding"),
                market: str | None = None, interval: str | None = None) -> LakeReport:
    """Verify every selected series, one at a time. An empty lake gives an empty report
    (whatever the filters); a filter naming nothing the lake has is a UserError."""
    paths = LakePaths(root)
    found = discover(paths, datasets)
    if not found:
        return LakeReport(root, [])
    chosen = select(found, market, interval, root)
    return LakeReport(root, [SeriesCheck(paths, sid, sorted(found[sid])).run()
                             for sid in chosen])
