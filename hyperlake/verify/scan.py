"""The scan of one series: its partitions in date order against its state files.

Memory stays bounded: partitions are read one UTC date at a time, only the columns
a check needs, and the expected buckets are enumerated one day at a time; what is
kept across partitions is counters, the first few offending keys, and the keys of
misplaced rows (capped) to look for their twins in the partition they belong to.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Collection

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hyperlake.lake.checkpoints import Series
from hyperlake.lake.compaction import days_of
from hyperlake.lake.paths import LakePaths, Partition, SeriesKey
from hyperlake.lake.ranges import RangeSet, Span, buckets_in
from hyperlake.lake.store import Location, Store, relative
from hyperlake.schemas.datasets import DATASET_SPECS
from hyperlake.schemas.intervals import DAY_MS, HOUR_MS, is_interval
from hyperlake.schemas.records import TS
from hyperlake.verify.buckets import (
    F64,
    I64,
    Mask,
    distinct,
    grid_next,
    grid_starts,
    inside,
    is_funding_hour,
    member,
    opens_in,
    repeated,
    union,
)
from hyperlake.verify.report import SeriesId, SeriesReport, SourceState, findings_for

#: A funding row later than this after its hour is off-hour (real rows land < 2 s after).
OFF_HOUR_TOLERANCE_MS = 5_000
#: Misplaced-row keys remembered for the cross-partition duplicate check.
MAX_TRACKED_MISPLACED = 1_000_000

EPOCH_DATE = dt.date(1970, 1, 1)

_CANDLE_COLUMNS = ["t", "t_close", "o", "h", "l", "c", "v", "n", "source"]
_FUNDING_COLUMNS = ["time", "funding_hour", "source"]


def _ms(column: pa.ChunkedArray) -> I64:
    """Timestamps (any unit the cast accepts) as epoch ms; a null becomes -1."""
    ints = pc.fill_null(column.cast(TS).cast(pa.int64()), -1)
    return np.asarray(ints.to_numpy(), dtype=np.int64)


def _f64(table: pa.Table, name: str) -> F64:
    """A numeric column as float64; a null becomes NaN (and fails every comparison)."""
    return np.asarray(table.column(name).cast(pa.float64()).to_numpy(), dtype=np.float64)


def _day_number(day: dt.date) -> int:
    return (day - EPOCH_DATE).days


def _footer_problem(store: Store, path: Location) -> str | None:
    try:
        pq.read_metadata(store.parquet(path, footer_only=True).source)
    except (OSError, pa.ArrowException) as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def read_partition(store: Store, partition: Partition, columns: list[str]) -> pa.Table:
    """Every lake file of one partition (normally just part-0.parquet), some columns.
    Raises OSError or pyarrow.ArrowException when a file cannot be read."""
    tables = [pq.read_table(store.parquet(path).source, columns=columns)
              for path in partition.files]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


class SeriesCheck:
    """Scans one series' partitions in date order and fills its report."""

    def __init__(self, paths: LakePaths, sid: SeriesId, sources: list[str],
                 days: Collection[int] | None = None) -> None:
        self.sid = sid
        self.only_days = None if days is None else set(days)  # UTC day numbers; None: all
        self.key = DATASET_SPECS[sid.dataset].key
        self.funding = sid.dataset == "funding"
        self.columns = _FUNDING_COLUMNS if self.funding else _CANDLE_COLUMNS
        self.series = [Series(paths, SeriesKey(sid.dataset, s, sid.market, sid.interval))
                       for s in sources]
        states = [SourceState.read(series) for series in self.series]
        self.report = SeriesReport(sid, states, findings_for(sid.dataset))
        self.f = self.report.findings
        self.covered = self.report.covered
        self.failed = union(s.failed for s in states)
        self.confirmed = union(s.confirmed for s in states)
        self.store = paths.store
        self.partitions = paths.partition_files(sid.dataset, sid.market, sid.interval)
        self.misplaced: dict[int, list[I64]] = defaultdict(list)
        self.tracked = 0
        self.row_window: tuple[int, int] | None = None

    def run(self) -> SeriesReport:
        if not is_interval(self.sid.interval):
            self._unknown_interval()
            return self.report
        self._state_findings()
        by_day = {_day_number(p.date): p for p in self.partitions if p.date is not None}
        self.row_window = self._row_window([by_day[d] for d in sorted(by_day)])
        days = {d for span in self.confirmed for d in days_of(span)} | set(by_day)
        if self.only_days is not None:
            days &= self.only_days
        for day in sorted(days):
            self._day(day, by_day.get(day))
        for partition in self.partitions:
            if partition.date is None:
                self._partition(partition, None)
        self._misplaced_twins(by_day)
        return self.report

    def _unknown_interval(self) -> None:
        """A folder the pipelines cannot have written: its rows cannot be checked."""
        text = f"interval={self.sid.interval}: not an interval"
        self.f["unreadable"].add(max(1, len(self.partitions)), [(0, text)])

    # state files

    def _unreadable_parts(self) -> None:
        """Checkpoint parts that are not whole Parquet files (or whose footer cannot be
        read): their names claim coverage their rows cannot back."""
        for series in self.series:
            for span, path in series.parts():
                problem = self.store.torn_parquet(path) or _footer_problem(self.store, path)
                if problem is not None:
                    text = f"{relative(path, series.paths.root)}: {problem}"
                    self.f["unreadable_parts"].add(1, [(span.start, text)])

    def _state_findings(self) -> None:
        self._unreadable_parts()
        interval = self.sid.interval
        for state in self.report.sources:
            self.f["pending"].add_spans(state.pending, interval)
            self.f["provisional"].add_spans(state.provisional, interval)
            self.f["failed"].add_spans(state.failed, interval)
            if state.failed:
                self.f["failed"].detail[state.source] += buckets_in(state.failed, interval)
        known = self.covered.union(self.failed)
        if known:
            hull = RangeSet([Span(known.spans[0].start, known.spans[-1].end)])
            self.f["holes"].add_spans(hull.subtract(known), interval)

    def _row_window(self, partitions: list[Partition]) -> tuple[int, int] | None:
        """Earliest and latest key of the series (first and last partition)."""
        if not self.funding or not partitions:
            return None
        try:
            first = _ms(self._read(partitions[0], [self.key]).column(self.key))
            last = _ms(self._read(partitions[-1], [self.key]).column(self.key))
        except (OSError, pa.ArrowException):
            return None
        if len(first) == 0 or len(last) == 0:
            return None
        return int(first.min()), int(last.max())

    # partitions

    def _read(self, partition: Partition, columns: list[str]) -> pa.Table:
        return read_partition(self.store, partition, columns)

    def _day(self, day: int, partition: Partition | None) -> None:
        present: I64 = np.zeros(0, dtype=np.int64)
        if partition is not None:
            keys = self._partition(partition, day)
            if keys is None:
                return  # unreadable: its buckets are neither present nor empty
            present = keys // HOUR_MS * HOUR_MS if self.funding else keys
        self._empties(day, present)

    def _partition(self, partition: Partition, day: int | None) -> I64 | None:
        """Check one partition's rows; its keys, or None when it cannot be read."""
        folder = partition.folder
        try:
            table = self._read(partition, self.columns)
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

    def _drop_null_keys(self, table: pa.Table, folder: Location) -> pa.Table:
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

    def _misplaced_twins(self, by_day: dict[int, Partition]) -> None:
        """A misplaced row whose key is also in its own date's partition (or in another
        misplaced row) is a duplicate across partitions."""
        for home, chunks in sorted(self.misplaced.items()):
            keys = np.concatenate(chunks)
            twins = [repeated(keys)]
            partition = by_day.get(home)
            if partition is not None:
                try:
                    own = _ms(self._read(partition, [self.key]).column(self.key))
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
