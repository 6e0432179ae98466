"""The tasks of a backfill: small, picklable, idempotent, and the same wherever they run.

Each task is a frozen dataclass that says what to do and ``run(ctx, inputs)`` does it
through the lake's own APIs (``Series``/``ShardWriter``, the fetches the extract
commands use, compaction's per-group steps, verify), under the run's grant: the
driver holds the lake's writer lock, and every commit a task makes first checks that
the lake's holder is still that run (``lake.lock.RunGrant``). A task never spells a
path or touches a file itself.

Run twice (a worker killed mid-task, the task retried elsewhere), a task ends where a
single run ends:

- an extract of one series over one chunk (a month; a day of 1s bars) plans from the
  files again, so what its earlier attempt committed is not fetched twice; parts are
  named for their spans, so a re-fetched span replaces its part with the same rows;
  it sweeps leftovers of interrupted writes in its own job folder only;
- a compaction of one month of days of one group merges the same parts into the same
  bytes (an unchanged partition is not rewritten); it sweeps its own days' folders;
- the finish of a group (row index, coverage markers, then deleting the merged parts)
  writes the same files again and deletes what is left;
- a verify only reads.

Nothing sweeps lake-wide while tasks write: another task's temporary may be in flight.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from hyperlake.errors import HyperlakeError
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.compaction import (
    CompactionStats,
    Listed,
    days_of,
    finish_group,
    forget_days,
    list_parts,
    merge_days,
    part_days,
    utc_date,
)
from hyperlake.lake.lock import Grant, GrantRevoked
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import RangeSet, Span, buckets_in
from hyperlake.lake.store import Location
from hyperlake.net.redact import Redactor
from hyperlake.pipelines.backfill.budgets import paced
from hyperlake.pipelines.candles.job import CandleJob, source_fetch
from hyperlake.pipelines.candles.registry import source as registered
from hyperlake.pipelines.funding import FundingFetch, FundingJob, packed_windows
from hyperlake.pipelines.runner import Counters, Fetch, Report, Work
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.pipelines.update.plan import HOURS_PER_WINDOW, Group
from hyperlake.pipelines.update.run import LEDGER_FINDINGS
from hyperlake.schemas.datasets import DATASET_SPECS
from hyperlake.schemas.intervals import DAY_MS
from hyperlake.schemas.times import format_instant
from hyperlake.verify import SeriesId, verify_series

#: The progress lanes of the stages after extraction (extraction's are its sources').
COMPACT_LANE, VERIFY_LANE = "compact", "verify"


@dataclass(frozen=True)
class TaskContext:
    """What every task of a run shares: the lake, the run's grant, the sources."""

    lake: Location  # absolute: tasks run in other processes, on other hosts
    grant: Grant
    settings: SourceSettings
    precedence: tuple[str, ...] = ()  # compaction's source order (empty: later fetch wins)
    budgets: str | None = None  # the cluster's budget facts (``budgets``); None: no cluster

    def paths(self) -> LakePaths:
        return LakePaths(self.lake, self.grant)


class Task(Protocol):
    """A node of the run's graph."""

    @property
    def name(self) -> str:
        """Unique in the run (the Dask key)."""
        ...

    @property
    def deps(self) -> tuple[str, ...]:
        """The names of the tasks whose results are ``inputs``, in order."""
        ...

    @property
    def lane(self) -> str: ...

    @property
    def units(self) -> int:
        """Units of progress this task is (buckets for an extract, else 1)."""
        ...

    def describe(self) -> str: ...

    def run(self, ctx: TaskContext, inputs: Sequence[object],
            report: Report | None = None) -> object: ...


def run_task(task: Task, ctx: TaskContext, *inputs: object) -> object:
    """The one entry point a worker calls (``inputs``: the results of ``task.deps``)."""
    return task.run(ctx, inputs)


# -- extraction ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Extracted:
    name: str
    counters: Counters = field(default_factory=Counters)
    error: str | None = None  # the source failed for good (a refused key, ...)


@dataclass(frozen=True, kw_only=True)
class Extract(abc.ABC):
    """Fetch what one series misses of one chunk (planned by the driver; re-planned from
    the files when the task runs, so a retry fetches only what is still missing)."""

    name: str
    key: SeriesKey
    want: Span  # the chunk: the job folder's span
    missing: RangeSet  # what the driver's plan left to fetch (other sources subtracted)
    rate: float | None = None  # requests per second of a rate-paced source (its plan's)
    deps: tuple[str, ...] = ()
    payer: ClassVar[str | None] = None  # whose budget pays; None: the series' source

    @property
    def lane(self) -> str:
        return self.key.source

    @property
    def buckets(self) -> int:
        """Buckets (hours, for funding) the driver planned to fetch."""
        return buckets_in(self.missing, self.key.interval)

    @property
    def units(self) -> int:
        """What the fetch reports its progress in (buckets)."""
        return self.buckets

    def describe(self) -> str:
        return f"{self.key.describe()} from {format_instant(self.want.start)}"

    @abc.abstractmethod
    def fetch(self, ctx: TaskContext, settings: SourceSettings, rate: float | None) -> Fetch:
        """The fetch the extract command of this dataset uses."""

    def run(self, ctx: TaskContext, inputs: Sequence[object],
            report: Report | None = None) -> Extracted:
        ctx.grant.check()  # an orphaned task does not even start
        series = Series(ctx.paths(), self.key)
        series.store.sweep(series.job_folder(self.want))  # this task's own folder only
        missing = self.missing.intersect(series.missing(self.want))
        if not missing:
            return Extracted(self.name)
        work = Work(series=series, want=self.want, missing=missing)
        try:
            with paced(ctx.settings, ctx.budgets, self.payer or self.key.source,
                       self.rate) as (settings, rate):
                counters = self.fetch(ctx, settings, rate)([work], report or _no_report)
        except GrantRevoked:
            raise
        except HyperlakeError as exc:
            message = Redactor(ctx.settings.secrets())(str(exc))
            return Extracted(self.name, error=f"{self.key.describe()}: {message}")
        return Extracted(self.name, counters)


@dataclass(frozen=True, kw_only=True)
class CandleExtract(Extract):
    def fetch(self, ctx: TaskContext, settings: SourceSettings, rate: float | None) -> Fetch:
        job = CandleJob(source=registered(self.key.source).name,
                        market=self.key.market, interval=self.key.interval,
                        start_ms=self.want.start, end_ms=self.want.end, lake=ctx.lake,
                        workers=1, rate=rate, in_process=True)
        return source_fetch(job, settings)


@dataclass(frozen=True, kw_only=True)
class FundingExtract(Extract):
    payer: ClassVar[str | None] = "hyperliquid"

    @property
    def lane(self) -> str:
        return "funding"

    @property
    def units(self) -> int:
        """The funding fetch reports windows done."""
        return len(packed_windows(self.missing, HOURS_PER_WINDOW))

    def fetch(self, ctx: TaskContext, settings: SourceSettings, rate: float | None) -> Fetch:
        job = FundingJob(markets=(self.key.market,), start_ms=self.want.start,
                         end_ms=self.want.end, lake=ctx.lake,
                         hours_per_window=HOURS_PER_WINDOW, threads=1)
        return FundingFetch(job, settings)


def _no_report(counters: Counters, done: int) -> None:
    pass


#: The extract of each dataset's series.
EXTRACTS: dict[str, type[Extract]] = {"candles": CandleExtract, "funding": FundingExtract}


# -- compaction ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DaysCompacted:
    name: str
    group: Group
    listed: Listed  # the parts that touch these days, as listed
    days: tuple[int, int]  # [first, end) UTC day numbers this task was given
    merged: list[int]  # days merged into partitions (with rows)
    lost: list[int]  # days whose partition was unreadable (quarantined)
    stats: CompactionStats


@dataclass(frozen=True, kw_only=True)
class CompactDays:
    """Merge the group's parts into the partitions of a range of days (a month)."""

    name: str
    group: Group
    keys: tuple[SeriesKey, ...]  # the group's series, in compaction's order
    days: tuple[int, int]
    deps: tuple[str, ...] = ()

    lane: ClassVar[str] = COMPACT_LANE
    units: ClassVar[int] = 1

    def describe(self) -> str:
        dataset, market, interval = self.group
        return f"{dataset} {market} {interval} {utc_date(self.days[0] * DAY_MS)[:7]}"

    def run(self, ctx: TaskContext, inputs: Sequence[object],
            report: Report | None = None) -> DaysCompacted:
        ctx.grant.check()
        paths = ctx.paths()
        lo, hi = self.days
        listed = {key: [(span, path) for span, path in found
                        if any(lo <= d < hi for d in days_of(span))]
                  for key, found in list_parts([Series(paths, k) for k in self.keys]).items()}
        days = [d for d in part_days(listed) if lo <= d < hi]
        for day in days:  # leftovers of this task's own earlier attempt
            paths.store.sweep(paths.partition(*self.group, utc_date(day * DAY_MS)))
        stats = CompactionStats()
        done = merge_days(paths, self.group, listed, days, DATASET_SPECS[self.group[0]],
                          ctx.precedence, stats)
        return DaysCompacted(self.name, self.group, listed, self.days, done.merged, done.lost,
                             stats)


@dataclass(frozen=True)
class GroupCompacted:
    name: str
    group: Group
    days: list[int]  # UTC days of the parts compacted (what verify reads again)
    stats: CompactionStats


@dataclass(frozen=True, kw_only=True)
class FinishGroup:
    """Once every day is merged: row index, coverage markers, delete the parts."""

    name: str
    group: Group
    keys: tuple[SeriesKey, ...]
    deps: tuple[str, ...] = ()

    lane: ClassVar[str] = COMPACT_LANE
    units: ClassVar[int] = 1

    def describe(self) -> str:
        return " ".join(self.group)

    def run(self, ctx: TaskContext, inputs: Sequence[object],
            report: Report | None = None) -> GroupCompacted:
        ctx.grant.check()
        paths = ctx.paths()
        chunks = [done for done in inputs if isinstance(done, DaysCompacted)]
        series = [Series(paths, k) for k in self.keys]
        for one in series:
            paths.store.sweep(one.coverage_folder)
        paths.store.sweep(paths.row_index(*self.group).parent)
        consumed = _fully_merged(chunks)
        lost = sorted({d for done in chunks for d in done.lost})
        forget_days(paths, self.group, lost)  # again: merges of one group ran side by side
        stats = CompactionStats()
        merged = sorted({d for done in chunks for d in done.merged})
        finish_group(paths, self.group, series, consumed, merged, DATASET_SPECS[self.group[0]],
                     stats)
        days = part_days(consumed)
        if days:
            stats.groups.append(" ".join(self.group))
            stats.days[self.group] = days
        return GroupCompacted(self.name, self.group, days, stats)


def _fully_merged(chunks: list[DaysCompacted]) -> Listed:
    """The parts every one of whose days was handled by some chunk (only those may be
    deleted)."""
    handled: dict[tuple[SeriesKey, Span, Location], set[int]] = {}
    for done in chunks:
        lo, hi = done.days
        for key, found in done.listed.items():
            for span, path in found:
                handled.setdefault((key, span, path), set()).update(
                    d for d in days_of(span) if lo <= d < hi)
    out: Listed = {}
    for (key, span, path), days in sorted(handled.items(),
                                           key=lambda item: (item[0][1], str(item[0][2]))):
        if set(days_of(span)) <= days:
            out.setdefault(key, []).append((span, path))
    return out


# -- verification -------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    name: str
    group: Group
    violations: int  # beyond the gap ledger's (a run reports those as gaps)
    warnings: int


@dataclass(frozen=True, kw_only=True)
class VerifyGroup:
    """Verify one series: the days its compaction merged, or every day (``whole``)."""

    name: str
    group: Group
    whole: bool = False
    deps: tuple[str, ...] = ()

    lane: ClassVar[str] = VERIFY_LANE
    units: ClassVar[int] = 1

    def describe(self) -> str:
        return " ".join(self.group)

    def run(self, ctx: TaskContext, inputs: Sequence[object],
            report: Report | None = None) -> Verified:
        compacted = [done for done in inputs if isinstance(done, GroupCompacted)]
        days = None if self.whole else [d for done in compacted for d in done.days]
        result = verify_series(ctx.lake, SeriesId(*self.group), days)
        violations = sum(f.weight for name, f in result.findings.items()
                         if f.severity == "violation" and name not in LEDGER_FINDINGS)
        return Verified(self.name, self.group, violations, result.warnings)


def progress_of(report: Callable[[Task, int], None], task: Task) -> Report:
    """A fetch's ``report`` that tells how far ``task`` got."""
    def on_report(counters: Counters, done: int) -> None:
        report(task, done)

    return on_report


