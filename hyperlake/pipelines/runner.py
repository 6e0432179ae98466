"""The one extract walk, for every source and dataset:

    lock → sweep → plan (target - coverage - ledger) → fetch → commit → ledger → summary

The invariants live here, once: one writer per lake (the lock is held from before
the first file is touched until the last commit); leftovers of interrupted atomic
writes are swept first; the work is what the checkpoint files do not already cover
minus nothing the ledger still lists as failed, so a re-run of a finished job makes
no request and failed buckets are tried again; what is left failed afterwards is
read back from the ledger, never from a counter.

A fetch (one per source, or funding's) only fetches and commits parts through the
series' ``ShardWriter``; it never decides what to fetch. ``ExtractRun`` is the hook
for callers that plan many series under one lock (``update``) or only plan
(``--dry-run``); ``extract`` is the one-call form the commands use.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

import orjson

from hyperlake.lake.checkpoints import Series
from hyperlake.lake.ledger import Gap
from hyperlake.lake.lock import Grant
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.quarantine import Quarantined
from hyperlake.lake.ranges import RangeSet, Span, buckets_in
from hyperlake.lake.store import Location
from hyperlake.pipelines.head import larger_skew


@dataclass
class Counters:
    """What happened to the requests of a run so far."""

    fetched: int = 0
    empty: int = 0
    retried: int = 0
    failed: int = 0
    provisional: int = 0  # buckets answered, but not for good yet (``pipelines.head``)
    requests: int = 0
    weight: float = 0.0  # budget weight the requests cost (sources paced by weight)
    cpu_seconds: float = 0.0  # client CPU spent by the workers doing it
    clock_skew_ms: int = 0  # our clock minus the source's, the largest seen (0: unknown)

    def merge(self, other: Counters) -> None:
        """Add ``other``'s counts into this one (e.g. one worker's into the run's); the
        clock skew is the larger of the two, not a sum."""
        for f in dataclasses.fields(self):
            if f.name != "clock_skew_ms":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.clock_skew_ms = larger_skew(self.clock_skew_ms, other.clock_skew_ms)


#: ``on_progress(total, counters, done)``: units of work planned, counts so far, done.
OnProgress = Callable[[int, Counters, int], None]
#: What a fetch reports as it goes: counts so far, units done.
Report = Callable[[Counters, int], None]


@dataclass(frozen=True, kw_only=True)
class Work:
    """One series' share of a run: what was asked for, and what is missing of it."""

    series: Series
    want: Span
    missing: RangeSet

    @property
    def key(self) -> SeriesKey:
        return self.series.key

    def buckets(self) -> int:
        """Buckets still to fetch."""
        return buckets_in(self.missing, self.key.interval)

    def gaps(self) -> list[Gap]:
        """Gap-ledger entries that meet what was asked for (read from files)."""
        return [g for g in self.series.gaps() if g.span.overlaps(self.want)]

    def provisional(self) -> RangeSet:
        """What of the asked-for span is answered but not settled yet (from files)."""
        return self.series.provisional.spans().intersect(RangeSet([self.want]))


class Fetch(Protocol):
    """A source's (or a dataset's) fetch: fetch the missing spans, commit parts."""

    def units(self, work: Sequence[Work]) -> int:
        """How many units of progress ``work`` is (buckets, windows, …)."""
        ...

    def __call__(self, work: Sequence[Work], report: Report) -> Counters:
        ...


@dataclass
class ExtractResult:
    work: list[Work]
    counters: Counters
    seconds: float
    planned: int = 0  # units of progress that had to be fetched
    gaps: dict[SeriesKey, list[Gap]] = field(default_factory=dict)
    provisional: dict[SeriesKey, RangeSet] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)


class ExtractRun:
    """The lake, locked for one extract run: plan, then execute, any number of times."""

    def __init__(self, lake: Location) -> None:
        self.paths = LakePaths(lake)
        self._lock = self.paths.writer_lock()  # re-entrant: shared with a caller's
        self.quarantined: list[Quarantined] = []  # broken parts moved aside by ``plan``

    def __enter__(self) -> ExtractRun:
        self._lock.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._lock.release()

    def grant(self) -> Grant:
        """What tasks of this run write under in processes that cannot hold the lock
        (``lake.lock.RunGrant``)."""
        return self._lock.grant()

    def plan(self, targets: Iterable[tuple[SeriesKey, Span]]) -> list[Work]:
        """What is missing of each target, from the files (after sweeping leftovers and
        moving aside parts that are not whole: their names must not claim coverage)."""
        work = []
        for key, want in targets:
            series = Series(self.paths, key)
            for folder in (series.folder, series.ledger.folder, series.provisional.folder):
                self.paths.store.sweep(folder)
            self.quarantined += series.quarantine_broken_parts()
            work.append(Work(series=series, want=want, missing=series.missing(want)))
        return work

    def execute(self, work: list[Work], fetch: Fetch,
                on_progress: OnProgress | None = None) -> ExtractResult:
        """Fetch what ``work`` misses; the gap ledger is read back afterwards."""
        started = time.monotonic()
        todo = [w for w in work if w.missing]
        counters, planned = Counters(), 0
        if todo:
            for item in todo:
                _write_job_file(item)
            planned = fetch.units(todo)

            def report(counts: Counters, done: int) -> None:
                if on_progress is not None:
                    on_progress(planned, counts, done)

            counters = fetch(todo, report)
        return ExtractResult(work, counters, time.monotonic() - started, planned,
                             {w.key: w.gaps() for w in work},
                             {w.key: w.provisional() for w in work}, list(self.quarantined))


def extract(lake: Location, targets: Iterable[tuple[SeriesKey, Span]], fetch: Fetch,
            on_progress: OnProgress | None = None) -> ExtractResult:
    """Lock the lake, plan ``targets`` and fetch what they miss."""
    started = time.monotonic()
    with ExtractRun(lake) as run:
        result = run.execute(run.plan(targets), fetch, on_progress)
    result.seconds = time.monotonic() - started
    return result


def _write_job_file(work: Work) -> None:
    """A note of what the job set out to do (informational: never read back)."""
    folder = work.series.job_folder(work.want)
    work.series.store.put(folder / "job.json", orjson.dumps({
        "series": work.key.describe(), "start": work.want.start, "end": work.want.end,
        "missing_at_start": [[s.start, s.end] for s in work.missing],
    }, option=orjson.OPT_INDENT_2))
