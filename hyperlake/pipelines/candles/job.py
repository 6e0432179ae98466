"""A candle extraction job: one market and interval from one source, over [start, end).

The walk (lock, plan from files, fetch, ledger) is ``pipelines.runner``'s; what
differs between sources (intervals, depth, pacing, the fetch itself) is declared in
``pipelines.sources``. This module ties them together and sums the run up.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

from hyperlake.lake.paths import SeriesKey
from hyperlake.lake.ranges import RangeSet, Span, buckets_in
from hyperlake.lake.store import Location
from hyperlake.pipelines.candles.registry import source
from hyperlake.pipelines.runner import Counters, ExtractResult, Fetch, OnProgress, extract
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.schemas.times import format_instant
from hyperlake.schemas.vocabulary import Source


@dataclass(frozen=True, kw_only=True)
class CandleJob:
    source: Source
    market: str  # canonical
    interval: str
    start_ms: int
    end_ms: int
    lake: Location
    workers: int = 1
    rate: float | None = None  # requests per second (sources paced by a plan ceiling)
    #: A small one-worker Dwellir job may run in this process (``update``: many small
    #: series in one process); False: always in worker processes.
    in_process: bool = False

    @property
    def span(self) -> Span:
        return Span(self.start_ms, self.end_ms)

    @property
    def key(self) -> SeriesKey:
        return SeriesKey("candles", self.source, self.market, self.interval)


@dataclass
class JobSummary:
    source: str
    market: str
    interval: str
    start: str
    end: str
    buckets: int
    planned: int  # buckets that had to be fetched this run
    counters: Counters
    gaps: int  # buckets left in the gap ledger for this range
    seconds: float
    requests_per_s: float
    provisional: int = 0  # buckets of this range the source has not settled yet
    quarantined: tuple[str, ...] = ()  # broken parts moved aside, one line each

    @classmethod
    def of(cls, job: CandleJob, result: ExtractResult) -> JobSummary:
        failed = RangeSet(g.span for g in result.gaps[job.key]).intersect(RangeSet([job.span]))
        counters, seconds = result.counters, result.seconds
        return cls(job.source, job.market, job.interval, format_instant(job.start_ms),
                   format_instant(job.end_ms), buckets_in([job.span], job.interval),
                   result.planned, counters, buckets_in(failed, job.interval), seconds,
                   counters.requests / seconds if seconds > 0 else 0.0,
                   buckets_in(result.provisional[job.key], job.interval),
                   tuple(q.line(job.lake) for q in result.quarantined))

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "market": self.market, "interval": self.interval,
                "start": self.start, "end": self.end, "buckets": self.buckets,
                "planned": self.planned, "fetched": self.counters.fetched,
                "empty": self.counters.empty, "retried": self.counters.retried,
                "failed": self.counters.failed, "requests": self.counters.requests,
                "gaps": self.gaps, "provisional": self.provisional,
                "quarantined": list(self.quarantined),
                "clock_skew_s": round(self.counters.clock_skew_ms / 1000, 3),
                "seconds": round(self.seconds, 3),
                "requests_per_s": round(self.requests_per_s, 1),
                "client_cpu_us_per_request": round(
                    1e6 * self.counters.cpu_seconds / self.counters.requests, 1)
                if self.counters.requests else None}


class FetchFactory(Protocol):
    """What each source module provides as ``fetch``."""

    def __call__(self, job: CandleJob, settings: SourceSettings) -> Fetch: ...


def source_fetch(job: CandleJob, settings: SourceSettings) -> Fetch:
    """The fetch of ``job``'s source, from the module its registry entry names."""
    factory: FetchFactory = importlib.import_module(source(job.source).fetch_module).fetch
    return factory(job, settings)


def run_job(job: CandleJob, settings: SourceSettings,
            on_progress: OnProgress | None = None) -> JobSummary:
    """Fetch what the lake is missing of ``job``. ``on_progress(total, counters, done)``."""
    result = extract(job.lake, [(job.key, job.span)], source_fetch(job, settings), on_progress)
    return JobSummary.of(job, result)
