"""A candle extraction job: validate, plan what is missing from files, fetch, summarise.

The invariants live here, once, for every source: inputs are checked before any
request or file; the work is what the checkpoint files do not already cover (so a
re-run of a finished job makes no request, and failed buckets in the ledger are
tried again); one writer per lake. Sources only fetch and commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hyperlake.errors import UserError
from hyperlake.lake.atomic import sweep_temporaries, write_bytes_atomic
from hyperlake.lake.checkpoints import Series, SeriesKey
from hyperlake.lake.lock import LakeLock
from hyperlake.lake.paths import LakePaths
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.net.progress import Counters
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.schemas.intervals import (
    DWELLIR_INTERVALS,
    FIXED_STEP_MS,
    HYDROMANCER_INTERVALS,
    HYPERLIQUID_INTERVALS,
    bucket_start,
    is_aligned,
    next_bucket,
    shift_buckets,
)
from hyperlake.schemas.sources import DWELLIR_PLANS, SOURCES
from hyperlake.schemas.times import format_instant

DWELLIR_FLOOR_MS = 1_753_603_200_000  # 2025-07-27T08:00:00Z
NATIVE_HORIZON = 5000
SOURCE_INTERVALS = {"hyperliquid": HYPERLIQUID_INTERVALS, "hydromancer": HYDROMANCER_INTERVALS,
                    "dwellir": DWELLIR_INTERVALS}


@dataclass(frozen=True)
class CandleJob:
    source: str
    market: str  # canonical
    interval: str
    start_ms: int
    end_ms: int
    lake: Path
    workers: int = 1
    rate: float | None = None  # requests per second (dwellir)

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

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "market": self.market, "interval": self.interval,
                "start": self.start, "end": self.end, "buckets": self.buckets,
                "planned": self.planned, "fetched": self.counters.fetched,
                "empty": self.counters.empty, "retried": self.counters.retried,
                "failed": self.counters.failed, "requests": self.counters.requests,
                "gaps": self.gaps, "seconds": round(self.seconds, 3),
                "requests_per_s": round(self.requests_per_s, 1),
                "client_cpu_us_per_request": round(
                    1e6 * self.counters.cpu_seconds / self.counters.requests, 1)
                if self.counters.requests else None}


def count_buckets(span: Span, interval: str) -> int:
    """Buckets of ``interval`` opening in the (aligned) span."""
    if interval != "1M":
        return (span.end - span.start) // FIXED_STEP_MS[interval]
    count, t = 0, span.start
    while t < span.end:
        count += 1
        t = next_bucket(t, interval)
    return count


def validate(source: str, interval: str, start_ms: int, end_ms: int, now_ms: int) -> None:
    """Every rule that needs no network; one line naming the field when broken."""
    if source not in SOURCES:
        raise UserError(f"--source {source!r}: expected one of {', '.join(SOURCES)}")
    allowed = SOURCE_INTERVALS[source]
    if interval not in allowed:
        raise UserError(f"--interval {interval!r}: {source} serves {', '.join(allowed)}")
    if start_ms >= end_ms:
        raise UserError("--start must be before --end")
    for name, value in (("--start", start_ms), ("--end", end_ms)):
        if not is_aligned(value, interval):
            earlier = bucket_start(value, interval)
            raise UserError(f"{name} {format_instant(value)} is not aligned to {interval}: use "
                            f"{format_instant(earlier)} or "
                            f"{format_instant(next_bucket(earlier, interval))}")
    if source == "dwellir":
        _validate_dwellir(interval, start_ms, end_ms, now_ms)
    if end_ms > now_ms:
        raise UserError(f"--end {format_instant(end_ms)} is in the future (now is "
                        f"{format_instant(now_ms)})")
    if source == "hyperliquid":
        earliest = shift_buckets(bucket_start(now_ms, interval), interval, -(NATIVE_HORIZON - 1))
        if start_ms < earliest:
            raise UserError(
                f"--start {format_instant(start_ms)}: hyperliquid keeps only the most recent "
                f"{NATIVE_HORIZON} {interval} candles, so the earliest it can serve now is "
                f"{format_instant(earliest)}; start there, or use --source hydromancer "
                f"(deep history) or dwellir (1s/1m/5m since 2025-07-27)")


def _validate_dwellir(interval: str, start_ms: int, end_ms: int, now_ms: int) -> None:
    if start_ms < DWELLIR_FLOOR_MS:
        raise UserError(f"--start {format_instant(start_ms)} is before Dwellir's archive floor "
                        f"{format_instant(DWELLIR_FLOOR_MS)}")
    open_bucket = bucket_start(now_ms, interval)
    if end_ms > open_bucket:
        raise UserError(f"--end {format_instant(end_ms)} reaches the open {interval} bucket "
                        f"(it opened at {format_instant(open_bucket)}; now is "
                        f"{format_instant(now_ms)}): end at {format_instant(open_bucket)} "
                        "or earlier")


def resolve_rate(rate: float | None, plan: str | None) -> float:
    if rate is not None and plan is not None:
        raise UserError("give --rate or --plan, not both")
    if rate is not None:
        if rate <= 0:
            raise UserError("--rate must be positive")
        return rate
    plan = plan or "free"
    if plan not in DWELLIR_PLANS:
        raise UserError(f"--plan {plan!r}: expected one of {', '.join(DWELLIR_PLANS)}")
    return float(DWELLIR_PLANS[plan])


Fetcher = Callable[[CandleJob, RangeSet, Series, SourceSettings,
                    Callable[[Counters, int], None]], Counters]


def run_job(job: CandleJob, settings: SourceSettings,
            on_progress: Callable[[int, Counters, int], None] | None = None) -> JobSummary:
    """Fetch what the lake is missing of ``job``. ``on_progress(total, counters, done)``."""
    paths = LakePaths(job.lake)
    started = time.monotonic()
    with LakeLock(paths.lock_file):
        series = Series(paths, job.key)
        sweep_temporaries(series.folder)
        sweep_temporaries(series.ledger)
        missing = series.missing(job.span)
        planned = sum(count_buckets(s, job.interval) for s in missing)
        counters = Counters()
        if missing:
            _write_job_file(series, job, missing)
            fetch = _fetcher(job.source)

            def progress(c: Counters, done: int) -> None:
                if on_progress is not None:
                    on_progress(planned, c, done)

            counters = fetch(job, missing, series, settings, progress)
        gaps = RangeSet(g.span for g in series.gaps()).intersect(RangeSet([job.span]))
    seconds = time.monotonic() - started
    return JobSummary(job.source, job.market, job.interval, format_instant(job.start_ms),
                      format_instant(job.end_ms), count_buckets(job.span, job.interval), planned,
                      counters, sum(count_buckets(s, job.interval) for s in gaps), seconds,
                      counters.requests / seconds if seconds > 0 else 0.0)


def _write_job_file(series: Series, job: CandleJob, missing: RangeSet) -> None:
    import orjson

    folder = series.job_folder(job.span)
    write_bytes_atomic(folder / "job.json", orjson.dumps({
        "series": job.key.describe(), "start": job.start_ms, "end": job.end_ms,
        "missing_at_start": [[s.start, s.end] for s in missing],
    }, option=orjson.OPT_INDENT_2))


def _fetcher(source: str) -> Fetcher:
    if source == "dwellir":
        from hyperlake.pipelines.candles.dwellir import fetch_dwellir

        return fetch_dwellir
    from hyperlake.pipelines.candles.snapshot import fetch_snapshot

    return fetch_snapshot
