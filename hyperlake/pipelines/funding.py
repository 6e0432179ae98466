"""Hourly funding from Hyperliquid's ``fundingHistory``: windowed, paced, resumable.

[start, end) is cut into windows of ``hours_per_window``; inside a window the API
is paged by 500 rows with the last ``time`` + 1 (its bounds are inclusive, so a
window [a, b) asks for a .. b-1 and no row is fetched twice or missed). Each window
is committed as one part file of the coin's series, so a ``kill -9`` loses at most
the window in flight, and a re-run fetches only what the files do not cover.

A window that keeps answering 500 is handled by ``--on-500``:
  empty      the window counts as empty and goes to the gap ledger (retried next run)
  split      halve it, recursively, down to one hour; then behave like ``empty``
  skip-coin  record the window in the ledger and abandon the coin; it is reported
Every other transient failure is retried with backoff and jitter, then ledgered.
Requests are paid from the weight budget every hyperlake process on the machine
shares: 20 a request + 1 per 20 rows, 45 reserved and the rest refunded.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from hyperlake.errors import UserError
from hyperlake.lake.atomic import sweep_temporaries
from hyperlake.lake.checkpoints import Failure, Series, SeriesKey, ShardWriter
from hyperlake.lake.lock import LakeLock
from hyperlake.lake.paths import LakePaths
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.net.pacing import SharedWeightBudget
from hyperlake.net.progress import Counters
from hyperlake.net.retry import Backoff, TransientError, error_for_status
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.schemas.candles import InvalidRecord
from hyperlake.schemas.funding import FundingRow, funding_table, parse_funding
from hyperlake.schemas.intervals import HOUR_MS
from hyperlake.schemas.sources import ON_500_MODES
from hyperlake.schemas.times import format_instant

SOURCE = "hyperliquid"
PAGE_ROWS = 500
BASE_WEIGHT = 20
ROWS_PER_WEIGHT = 20
MAX_WEIGHT = BASE_WEIGHT + PAGE_ROWS // ROWS_PER_WEIGHT


@dataclass(frozen=True)
class FundingJob:
    markets: tuple[str, ...]
    start_ms: int
    end_ms: int
    lake: Path
    hours_per_window: int = 336
    on_500: str = "empty"
    threads: int = 8

    @property
    def span(self) -> Span:
        return Span(self.start_ms, self.end_ms)


@dataclass
class CoinOutcome:
    market: str
    rows: int = 0
    windows: int = 0
    failed_windows: int = 0
    skipped: str | None = None  # why the coin was abandoned (skip-coin)


@dataclass
class FundingSummary:
    coins: int
    start: str
    end: str
    outcomes: list[CoinOutcome]
    counters: Counters
    gaps: int  # ledger entries intersecting the range, all coins
    seconds: float
    weight_spent: float

    def as_dict(self) -> dict[str, object]:
        return {
            "coins": self.coins, "start": self.start, "end": self.end,
            "rows": sum(o.rows for o in self.outcomes),
            "windows": sum(o.windows for o in self.outcomes),
            "requests": self.counters.requests, "retried": self.counters.retried,
            "failed_windows": sum(o.failed_windows for o in self.outcomes),
            "gaps": self.gaps,
            "skipped_coins": {o.market: o.skipped for o in self.outcomes if o.skipped},
            "weight": self.weight_spent, "seconds": round(self.seconds, 3),
        }


def validate_funding(start_ms: int, end_ms: int, now_ms: int, hours_per_window: int,
                     on_500: str) -> None:
    if start_ms >= end_ms:
        raise UserError("--start must be before --end")
    for name, value in (("--start", start_ms), ("--end", end_ms)):
        if value % HOUR_MS:
            floor = value // HOUR_MS * HOUR_MS
            raise UserError(f"{name} {format_instant(value)} is not on the hour: use "
                            f"{format_instant(floor)} or {format_instant(floor + HOUR_MS)}")
    if end_ms > now_ms:
        raise UserError(f"--end {format_instant(end_ms)} is in the future (now is "
                        f"{format_instant(now_ms)})")
    if hours_per_window < 1:
        raise UserError("--hours-per-window must be at least 1")
    if on_500 not in ON_500_MODES:
        raise UserError(f"--on-500 {on_500!r}: expected one of {', '.join(ON_500_MODES)}")


class Persistent500(Exception):
    """The window answered 500 on every attempt."""


class SkipCoin(Exception):
    """--on-500 skip-coin: stop working on this coin."""


def hour_windows(span: Span, hours: int) -> list[Span]:
    step = hours * HOUR_MS
    return [Span(s, min(s + step, span.end)) for s in range(span.start, span.end, step)]


@dataclass
class _Shared:
    """What the threads of one run share."""

    client: httpx.Client
    budget: SharedWeightBudget
    settings: SourceSettings
    backoff: Backoff
    lock: threading.Lock = field(default_factory=threading.Lock)
    counters: Counters = field(default_factory=Counters)
    weight: float = 0.0

    def count(self, **deltas: float) -> None:
        with self.lock:
            for name, value in deltas.items():
                if name == "weight":
                    self.weight += value
                else:
                    setattr(self.counters, name, getattr(self.counters, name) + value)


class CoinRun:
    def __init__(self, job: FundingJob, market: str, series: Series, shared: _Shared,
                 on_window: Callable[[], None]) -> None:
        self.job = job
        self.market = market
        self.series = series
        self.shared = shared
        self.on_window = on_window
        self.writer = ShardWriter(series, series.job_folder(job.span) / "coin")
        self.outcome = CoinOutcome(market)
        self.rng = random.Random()

    def run(self) -> CoinOutcome:
        try:
            for span in self.series.missing(self.job.span):
                for window in hour_windows(span, self.job.hours_per_window):
                    self._window(window)
                    self.on_window()
        except SkipCoin as exc:
            self.outcome.skipped = str(exc)
        return self.outcome

    def _window(self, window: Span) -> None:
        try:
            rows = self._fetch_window(window)
        except Persistent500:
            if self.job.on_500 == "split" and len(window) > HOUR_MS:
                middle = window.start + (len(window) // HOUR_MS // 2) * HOUR_MS
                self._window(Span(window.start, middle))
                self._window(Span(middle, window.end))
                return
            self._commit(window, [], Failure(window, "http 500 (counted as empty)"))
            if self.job.on_500 == "skip-coin":
                raise SkipCoin(f"http 500 on {format_instant(window.start)} → "
                               f"{format_instant(window.end)}") from None
            return
        except TransientError as exc:
            self._commit(window, [], Failure(window, exc.reason))
            return
        self._commit(window, rows, None)

    def _commit(self, window: Span, rows: list[FundingRow], failure: Failure | None) -> None:
        table = funding_table(self.market, SOURCE, rows)
        self.writer.commit(window, table, [failure] if failure else [])
        self.outcome.windows += 1
        self.outcome.rows += len(rows)
        if failure:
            self.outcome.failed_windows += 1
            self.shared.count(failed=1)

    def _fetch_window(self, window: Span) -> list[FundingRow]:
        rows: dict[int, FundingRow] = {}
        start = window.start
        while True:
            page = self._request(start, window.end - 1)
            for row in page:
                if window.start <= row[0] < window.end:
                    rows[row[0]] = row
            if len(page) < PAGE_ROWS:
                break
            start = page[-1][0] + 1
        self.shared.count(fetched=len(rows))
        return [rows[t] for t in sorted(rows)]

    def _request(self, start: int, end: int) -> list[FundingRow]:
        attempt = 0
        while True:
            try:
                return self._request_once(start, end)
            except TransientError as exc:
                attempt += 1
                if self.shared.backoff.exhausted(attempt):
                    if exc.reason == "http 500":
                        raise Persistent500 from None
                    raise
                self.shared.count(retried=1)
                time.sleep(self.shared.backoff.delay(attempt - 1, exc.retry_after, self.rng))

    def _request_once(self, start: int, end: int) -> list[FundingRow]:
        shared = self.shared
        shared.budget.acquire(MAX_WEIGHT)
        shared.count(requests=1)
        body = {"type": "fundingHistory", "coin": self.market, "startTime": start,
                "endTime": end}
        try:
            response = shared.client.post(f"{shared.settings.hyperliquid_url.rstrip('/')}/info",
                                          content=orjson.dumps(body),
                                          headers={"content-type": "application/json"})
        except httpx.TimeoutException:
            raise TransientError("timeout") from None
        except httpx.TransportError as exc:
            raise TransientError(type(exc).__name__) from None
        error = error_for_status(response.status_code, response.headers.get("retry-after"),
                                 f"funding {self.market}")
        if error is not None:
            shared.budget.refund(MAX_WEIGHT - BASE_WEIGHT)
            shared.count(weight=BASE_WEIGHT)
            raise error
        try:
            records = orjson.loads(response.content)
            if not isinstance(records, list):
                raise TransientError("answer is not a list")
            now = int(time.time() * 1000)
            rows = [parse_funding(r, self.market, now) for r in records]
        except (orjson.JSONDecodeError, InvalidRecord) as exc:
            raise TransientError(f"malformed answer: {exc}") from None
        weight = BASE_WEIGHT + len(rows) // ROWS_PER_WEIGHT
        shared.budget.refund(MAX_WEIGHT - weight)
        shared.count(weight=weight)
        return rows


def run_funding(job: FundingJob, settings: SourceSettings, backoff: Backoff | None = None,
                on_progress: Callable[[int, Counters, int], None] | None = None
                ) -> FundingSummary:
    paths = LakePaths(job.lake)
    started = time.monotonic()
    with LakeLock(paths.lock_file), httpx.Client(timeout=30, verify=settings.verify()) as client:
        shared = _Shared(client, settings.hyperliquid_budget(), settings,
                         backoff or settings.backoff())
        series = {m: Series(paths, SeriesKey("funding", SOURCE, m, "1h")) for m in job.markets}
        for s in series.values():
            sweep_temporaries(s.folder)
            sweep_temporaries(s.ledger)
        total = sum(len(hour_windows(span, job.hours_per_window))
                    for s in series.values() for span in s.missing(job.span))
        done = [0]

        def window_done() -> None:
            with shared.lock:
                done[0] += 1
                if on_progress is not None:
                    on_progress(total, shared.counters, done[0])

        runs = [CoinRun(job, m, series[m], shared, window_done) for m in job.markets]
        with ThreadPoolExecutor(max_workers=max(1, job.threads)) as pool:
            outcomes = list(pool.map(lambda run: run.run(), runs))
        ledger = RangeSet([job.span])
        gaps = sum(1 for s in series.values() for g in s.gaps()
                   if ledger.intersect(RangeSet([g.span])))
    return FundingSummary(len(job.markets), format_instant(job.start_ms),
                          format_instant(job.end_ms), outcomes, shared.counters, gaps,
                          time.monotonic() - started, shared.weight)
