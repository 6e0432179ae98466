"""Compaction: checkpoint parts → ``<dataset>/market=…/interval=…/date=…/part-0.parquet``.

One (dataset, market, interval) at a time, one UTC date at a time, so memory is
bounded by a day of rows whatever the size of the lake. For each date:

1. read the rows of the parts that overlap it and the partition's current file;
2. keep one row per key — a closed candle beats an open one, then the preferred
   source (when a precedence is configured), then the later fetch;
3. sort by key, check row count and key uniqueness, write a temporary file in the
   partition's folder, fsync, ``os.replace`` it onto ``part-0.parquet`` (skipped when
   the content is unchanged, so compacting twice changes no byte).

Only after every date of the group is swapped is the parts' coverage written to
``_state/coverage`` (file names state the spans), and only then are the parts
deleted. A kill at any instant leaves the parts in place; compacting again merges
the same rows to the same bytes.

On an object store the swap is one PUT of the merged file, conditional on the
partition being the version this merge read (``If-Match``, or ``If-None-Match: *``
for a new one): a second writer that replaced it meanwhile makes this merge stop
with ``Conflict`` and replace nothing, so its rows are never lost under ours.

``compact_group`` is three steps a cluster can also run apart (``hyperlake
backfill``): ``list_parts`` once, ``merge_days`` on disjoint sets of days at once
(say, a month each, on different workers), then ``finish_group`` once all are done.
The bytes are the same either way: each day is merged by the same function from the
same parts. Under a run grant (``lake.lock.RunGrant``, or a lease's grant on an object
store) every swap, and the finish, checks the grant first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hyperlake.lake.checkpoints import Series
from hyperlake.lake.paths import JOB, LAKE_FILE, PART, LakePaths, SeriesKey
from hyperlake.lake.quarantine import Quarantined, quarantine
from hyperlake.lake.ranges import Span
from hyperlake.lake.row_index import RowIndex
from hyperlake.lake.store import IF_ABSENT, IfMatch, Location, ParquetFile, Store
from hyperlake.schemas.datasets import DatasetSpec
from hyperlake.schemas.intervals import DAY_MS
from hyperlake.schemas.records import TS
from hyperlake.schemas.vocabulary import Dataset

ROW_GROUP_ROWS = 32_768
LAKE_WRITE_OPTIONS: dict[str, object] = {
    "compression": "zstd",
    "compression_level": 1,
    "row_group_size": ROW_GROUP_ROWS,
    "write_statistics": True,
    "use_dictionary": ["source"],
}


class CompactionError(RuntimeError):
    """A check before the swap failed: nothing was replaced."""


class BrokenFile(Exception):
    """A checkpoint part or partition that cannot be read (``lake.quarantine``)."""

    def __init__(self, path: Location, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def read_lake_table(file: ParquetFile, spec: DatasetSpec) -> pa.Table:
    """A part's or partition's rows in the lake schema; ``BrokenFile`` if unreadable."""
    try:
        return _conform(pq.read_table(file.source), spec.lake_schema)
    except (OSError, pa.ArrowException) as exc:
        lines = str(exc).strip().splitlines()
        raise BrokenFile(file.location, lines[0] if lines else type(exc).__name__) from None


@dataclass
class CompactionStats:
    partitions_written: int = 0
    partitions_unchanged: int = 0
    rows_in: int = 0  # rows read from checkpoints
    rows_out: int = 0  # rows in the partitions written
    parts_consumed: int = 0
    groups: list[str] = field(default_factory=list)
    #: UTC day numbers each group's compaction read parts of (what changed, for verify).
    days: dict[tuple[Dataset, str, str], list[int]] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)

    def add(self, other: CompactionStats) -> None:
        """Add ``other``'s counts (a task's, compacting part of the job) into these."""
        self.partitions_written += other.partitions_written
        self.partitions_unchanged += other.partitions_unchanged
        self.rows_in += other.rows_in
        self.rows_out += other.rows_out
        self.parts_consumed += other.parts_consumed
        self.groups += other.groups
        for group, days in other.days.items():
            self.days[group] = sorted({*self.days.get(group, []), *days})
        self.quarantined += other.quarantined


def utc_date(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d")


def days_of(span: Span) -> range:
    """UTC day numbers a span touches (by the keys it can hold)."""
    if span.end <= span.start:
        return range(0)
    return range(span.start // DAY_MS, (span.end - 1) // DAY_MS + 1)


def _order(table: pa.Table, spec: DatasetSpec) -> list[np.ndarray]:
    """The row key's columns (``spec.order``: the time key, then what tells rows of one
    instant apart) as int64 arrays."""
    return [np.asarray(table.column(name).cast(pa.int64()).to_numpy(), dtype=np.int64)
            for name in spec.order]


def _new_key(columns: list[np.ndarray]) -> np.ndarray:
    """Which rows (of rows sorted by key) start a key not seen on the row before."""
    first = np.ones(len(columns[0]), dtype=bool)
    if len(columns[0]) > 1:
        first[1:] = np.any([c[1:] != c[:-1] for c in columns], axis=0)
    return first


def _strictly_increasing(columns: list[np.ndarray]) -> bool:
    """Whether the keys are unique and in order (lexicographically)."""
    if len(columns[0]) < 2:
        return True
    greater = np.zeros(len(columns[0]) - 1, dtype=bool)
    equal = np.ones(len(columns[0]) - 1, dtype=bool)
    for c in columns:
        greater |= equal & (c[1:] > c[:-1])
        equal &= c[1:] == c[:-1]
    return bool(np.all(greater))


def _distinct(columns: list[np.ndarray]) -> int:
    if len(columns) == 1:
        return len(np.unique(columns[0]))
    return len(np.unique(np.stack(columns, axis=1), axis=0))


def deduplicate(table: pa.Table, spec: DatasetSpec, precedence: tuple[str, ...]) -> pa.Table:
    """One row per key, sorted by key. Ties: closed > open, preferred source, later
    fetch, then source name (a total order, so the result is deterministic)."""
    if table.num_rows == 0:
        return table
    sort_keys = [(name, "ascending") for name in spec.order]
    if spec.closed_column:
        sort_keys.append((spec.closed_column, "descending"))
    work = table
    if precedence:
        # index_in: position in the precedence list, null for unlisted sources (last).
        rank = pc.fill_null(pc.index_in(table.column("source"),
                                        value_set=pa.array(precedence, pa.string())),
                            len(precedence))
        work = table.append_column("_rank", rank)
        sort_keys.append(("_rank", "ascending"))
    sort_keys += [("fetched_at", "descending"), ("source", "ascending")]
    ordered = work.take(pc.sort_indices(work, sort_keys=sort_keys))
    kept = ordered.filter(pa.array(_new_key(_order(ordered, spec))))
    return kept.drop_columns(["_rank"]) if precedence else kept


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    return table.select(schema.names).cast(schema)


class _PartReader:
    """Rows of checkpoint parts by UTC day. A part that spans several days (a
    window crossing midnight) is read once and kept until its last day is done."""

    def __init__(self, store: Store, spec: DatasetSpec) -> None:
        self.store = store
        self.spec = spec
        self._cache: dict[str, tuple[Span, pa.Table]] = {}

    def rows(self, span: Span, path: Location, lo: int, hi: int) -> pa.Table:
        cached = self._cache.get(str(path))
        if cached is None:
            table = self._read(path)
            if span.start >= lo and span.end <= hi:
                return table  # wholly inside this day: no need to keep it
            cached = self._cache[str(path)] = (span, table)
        table = cached[1]
        keys = table.column(self.spec.key)
        inside = pc.and_(pc.greater_equal(keys, pa.scalar(lo, TS)),
                         pc.less(keys, pa.scalar(hi, TS)))
        return table.filter(inside)

    def forget_before(self, day_end: int) -> None:
        """Drop parts that end at or before ``day_end`` (days go in order)."""
        for path in [p for p, (span, _) in self._cache.items() if span.end <= day_end]:
            del self._cache[path]

    def _read(self, path: Location) -> pa.Table:
        try:
            file = self.store.parquet(path)
        except FileNotFoundError as exc:
            raise BrokenFile(path, exc.strerror or "missing") from None
        return read_lake_table(file, self.spec)


def _check(merged: pa.Table, spec: DatasetSpec, expected_keys: int) -> None:
    if merged.num_rows != expected_keys:
        raise CompactionError(f"{spec.name}: {merged.num_rows} rows after merge, expected "
                              f"{expected_keys} distinct keys")
    if not _strictly_increasing(_order(merged, spec)):
        raise CompactionError(f"{spec.name}: keys are not unique and sorted after merge")


def merge_partition(store: Store, folder: Location, incoming: list[pa.Table],
                    spec: DatasetSpec, precedence: tuple[str, ...]) -> tuple[bool, int]:
    """Merge ``incoming`` rows into ``folder/part-0.parquet``. Returns (written, rows)."""
    try:
        return _merge_partition(store, folder, incoming, spec, precedence)
    except _Unchanged as unchanged:
        return False, unchanged.rows


def _merge_partition(store: Store, folder: Location, incoming: list[pa.Table],
                     spec: DatasetSpec, precedence: tuple[str, ...]) -> tuple[bool, int]:
    final = folder / LAKE_FILE
    current = store.parquet_if_exists(final)
    current_rows = read_lake_table(current, spec) if current is not None else None
    tables = [t for t in ([current_rows] if current_rows is not None else []) + incoming
              if t.num_rows]
    if not tables:
        return False, 0
    union = pa.concat_tables(tables)
    keys = _order(union, spec)
    if _strictly_increasing(keys):
        merged = union  # already one row per key, in order: the usual first compaction
    else:
        expected = _distinct(keys)
        merged = deduplicate(union, spec, precedence)
        _check(merged, spec, expected)
    if current_rows is not None and merged.equals(current_rows):
        return False, merged.num_rows
    only = IF_ABSENT if current is None else IfMatch(current.version)
    with store.staging(final, only) as staged:
        pq.write_table(merged, staged.sink, **LAKE_WRITE_OPTIONS)
        written = staged.metadata()
        if written.num_rows != merged.num_rows:
            raise CompactionError(f"staging file of {folder} holds {written.num_rows} rows, "
                                  f"expected {merged.num_rows}")
        if current is not None and staged.same_as(current):
            # Table.equals says NaN != NaN: the bytes are the honest test.
            raise _Unchanged(merged.num_rows)
    return True, merged.num_rows


class _Unchanged(Exception):
    """The staged file is byte-identical to the live one: leave the live one alone."""

    def __init__(self, rows: int) -> None:
        super().__init__(rows)
        self.rows = rows


#: The checkpoint parts of a group's series, as listed once: by series, in order.
Listed = dict[SeriesKey, list[tuple[Span, Location]]]


def list_parts(series_list: list[Series]) -> Listed:
    """Every part of each series, listed once: a part that appears later (a streamer
    writes beside compaction) is left for the next compaction, never deleted unread."""
    return {series.key: series.parts() for series in series_list}


def part_days(listed: Listed) -> list[int]:
    """The UTC day numbers the listed parts touch, in order."""
    return sorted({d for found in listed.values() for span, _ in found for d in days_of(span)})


@dataclass
class DaysMerged:
    """What ``merge_days`` did: the days merged into partitions (with rows), and the
    days whose partition could not be read and was quarantined (rows lost)."""

    merged: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)


def merge_days(paths: LakePaths, group: tuple[Dataset, str, str], listed: Listed,
               days: list[int], spec: DatasetSpec, precedence: tuple[str, ...],
               stats: CompactionStats) -> DaysMerged:
    """Merge the listed parts' rows of ``days`` into their partitions, one UTC date at a
    time (each swap atomic, checked first under a run grant). Days are independent, so
    several callers may merge disjoint days of one group at once; the parts stay."""
    parts = [part for found in listed.values() for part in found]
    reader = _PartReader(paths.store, spec)
    done = DaysMerged()
    for day in days:
        lo, hi = day * DAY_MS, (day + 1) * DAY_MS
        incoming = []
        for span, path in [p for p in parts if p[0].start < hi and lo < p[0].end]:
            try:
                incoming.append(reader.rows(span, path, lo, hi))
            except BrokenFile as broken:
                stats.quarantined.append(quarantine(paths, broken.path, broken.reason))
                parts.remove((span, path))
        reader.forget_before(hi)
        stats.rows_in += sum(t.num_rows for t in incoming)
        if not any(t.num_rows for t in incoming):
            continue
        folder = paths.partition(*group, utc_date(lo))
        paths.check_grant()
        try:
            written, rows = merge_partition(paths.store, folder, incoming, spec, precedence)
        except BrokenFile as broken:
            stats.quarantined.append(quarantine(paths, broken.path, broken.reason))
            forget_days(paths, group, [day])
            done.lost.append(day)
            written, rows = merge_partition(paths.store, folder, incoming, spec, precedence)
        if written:
            stats.partitions_written += 1
            stats.rows_out += rows
        else:
            stats.partitions_unchanged += 1
        done.merged.append(day)
    return done


def finish_group(paths: LakePaths, group: tuple[Dataset, str, str], series_list: list[Series],
                 consumed: Listed, merged_days: list[int], spec: DatasetSpec,
                 stats: CompactionStats) -> None:
    """After every day of the ``consumed`` parts is merged: the row index of the days
    merged, then the parts' coverage markers, and only then the parts' deletion.
    Idempotent: run again after a kill, it writes the same index and markers and
    deletes what is left."""
    paths.check_grant()
    index = RowIndex(paths.store, paths.row_index(*group))
    for day in sorted(set(merged_days)):
        date = utc_date(day * DAY_MS)
        index.note(date, paths.partition(*group, date) / LAKE_FILE, spec)
    index.save()
    for series in series_list:
        # what was listed and read (a quarantined part has moved away): one listing
        present = {str(path) for _, path in series.parts()}
        done = [(span, path) for span, path in consumed.get(series.key, [])
                if str(path) in present]
        if not done:
            continue
        series.record_coverage(span for span, _ in done)
        paths.store.delete([path for _, path in done])
        stats.parts_consumed += len(done)
        remove_empty_jobs(paths.store, series.folder)


def compact_group(paths: LakePaths, group: tuple[Dataset, str, str], series_list: list[Series],
                  spec: DatasetSpec, precedence: tuple[str, ...],
                  stats: CompactionStats) -> bool:
    """Compact every part of the series of one (dataset, market, interval).
    Returns whether there was anything to compact. A part or partition that cannot
    be read is quarantined (``lake.quarantine``) and the rest goes on."""
    listed = list_parts(series_list)
    days = part_days(listed)
    if not days:
        return False
    stats.days[group] = days
    merged = merge_days(paths, group, listed, days, spec, precedence, stats)
    finish_group(paths, group, series_list, listed, merged.merged, spec, stats)
    return True


def quarantine_broken_partitions(paths: LakePaths, dataset: Dataset, stats: CompactionStats,
                                 wants: Callable[[tuple[Dataset, str, str]], bool]
                                 = lambda group: True) -> None:
    """Move aside every partition of ``dataset`` that is not a whole Parquet file (the
    cheap test of ``lake.quarantine``), and claim its day no more — in every group, not
    only those with parts to merge now: a truncated partition must not stay claimed as
    covered until new data for its day happens to come (the extract runs would call
    the day complete, and its rows would never come back). ``wants`` limits the check
    to the groups a run compacts (``update`` touches a few of a year-long lake's).
    Nothing to look for, and nothing listed, where the store cannot tear a file."""
    if not paths.store.can_tear:
        return
    for market, interval in paths.lake_series(dataset):
        if not wants((dataset, market, interval)):
            continue
        for partition in paths.partition_files(dataset, market, interval):
            for path in partition.files:
                problem = paths.store.torn_parquet(path)
                if problem is None:
                    continue
                stats.quarantined.append(quarantine(paths, path, problem))
                if partition.date is not None:
                    forget_days(paths, (dataset, market, interval),
                                [(partition.date - dt.date(1970, 1, 1)).days])


def forget_days(paths: LakePaths, group: tuple[Dataset, str, str], days: list[int]) -> None:
    """A partition's rows were lost: no source's coverage claims its day any more."""
    for day in days:
        _forget_day(paths, group, Span(day * DAY_MS, (day + 1) * DAY_MS))


def _forget_day(paths: LakePaths, group: tuple[Dataset, str, str], day: Span) -> None:
    """A partition's rows were lost: no source's coverage claims its day any more."""
    dataset, market, interval = group
    for key in paths.state_keys(dataset):
        if (key.market, key.interval) == (market, interval):
            Series(paths, key).drop_coverage(day)


def remove_empty_jobs(store: Store, folder: Location) -> None:
    """Drop job folders whose parts are all consumed (job.json is only informational).
    ``run_compact`` also calls it for every series it looks at: a compaction killed
    between deleting a series' last parts and this leaves a job folder with nothing but
    its job.json, which no later compaction of that series (no parts) would reach."""
    for job in store.dirs(folder, f"{JOB.prefix}*"):
        if not store.files(job, f"*/{PART.prefix}*{PART.suffix}"):
            store.remove_tree(job)
    store.prune((folder, folder.parent))  # interval=…, then market=…
