"""Paging ``candleSnapshot`` (Hyperliquid and Hydromancer) in windows of ≤ 5000 candles.

Windows are aligned, disjoint and committed one part file each; rows outside a
window (the overlap a server includes at the edges) are dropped, so windows never
duplicate. Every request is paid for before it is sent from the budget all
hyperlake processes on the machine share: the most the answer can weigh is
reserved, and the difference refunded once the real weight is known.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx
import orjson

from hyperlake.lake.checkpoints import Failure, Series, ShardWriter
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.net.pacing import SharedWeightBudget
from hyperlake.net.progress import Counters
from hyperlake.net.redact import Redactor
from hyperlake.net.retry import Backoff, TransientError, error_for_status
from hyperlake.pipelines.candles.job import CandleJob, count_buckets
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.schemas.candles import CandleRow, InvalidRecord, candle_table, parse_candle
from hyperlake.schemas.intervals import shift_buckets


class SnapshotSource(Protocol):
    name: str
    max_window: int

    def url(self) -> str: ...
    def headers(self) -> dict[str, str]: ...
    def body(self, market: str, interval: str, window: Span) -> dict[str, Any]: ...
    def budget(self) -> SharedWeightBudget: ...
    def weight(self, candles: int) -> float: ...
    def secrets(self) -> list[str]: ...


def windows(span: Span, interval: str, size: int) -> list[Span]:
    out = []
    start = span.start
    while start < span.end:
        end = min(span.end, shift_buckets(start, interval, size))
        out.append(Span(start, end))
        start = end
    return out


def source_for(job: CandleJob, settings: SourceSettings) -> SnapshotSource:
    if job.source == "hyperliquid":
        from hyperlake.pipelines.candles.hyperliquid import HyperliquidSnapshots

        return HyperliquidSnapshots(settings)
    from hyperlake.pipelines.candles.hydromancer import HydromancerSnapshots

    return HydromancerSnapshots(settings)


class WindowFetcher:
    def __init__(self, job: CandleJob, source: SnapshotSource, settings: SourceSettings,
                 client: httpx.Client, backoff: Backoff | None = None) -> None:
        self.job = job
        self.source = source
        self.settings = settings
        self.client = client
        self.backoff = backoff or settings.backoff()
        self.budget = source.budget()
        self.redact = Redactor(source.secrets())
        self.rng = random.Random()
        self.counters = Counters()

    def fetch(self, window: Span) -> tuple[list[CandleRow], list[Failure]]:
        """Rows of the window's closed candles, and what could not be had."""
        attempt = 0
        while True:
            try:
                return self._fetch_once(window)
            except TransientError as exc:
                attempt += 1
                if self.backoff.exhausted(attempt):
                    self.counters.failed += count_buckets(window, self.job.interval)
                    return [], [Failure(window, exc.reason)]
                self.counters.retried += 1
                time.sleep(self.backoff.delay(attempt - 1, exc.retry_after, self.rng))

    def _fetch_once(self, window: Span) -> tuple[list[CandleRow], list[Failure]]:
        buckets = count_buckets(window, self.job.interval)
        reserved = self.source.weight(buckets)
        self.budget.acquire(reserved)
        self.counters.requests += 1
        try:
            response = self.client.post(self.source.url(), headers=self.source.headers(),
                                        content=orjson.dumps(self.source.body(
                                            self.job.market, self.job.interval, window)))
        except httpx.TimeoutException:
            raise TransientError("timeout") from None
        except httpx.TransportError as exc:
            raise TransientError(self.redact(type(exc).__name__)) from None
        what = f"{self.source.name} candles {self.job.market} {self.job.interval}"
        error = error_for_status(response.status_code, response.headers.get("retry-after"), what)
        if error is not None:
            self.budget.refund(reserved - self.source.weight(0))
            raise error
        try:
            records = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise TransientError("malformed json") from None
        if not isinstance(records, list):
            raise TransientError("answer is not a list")
        self.budget.refund(max(0.0, reserved - self.source.weight(len(records))))
        return self._rows(window, records)

    def _rows(self, window: Span, records: list[Any]) -> tuple[list[CandleRow], list[Failure]]:
        now = self.settings.now_ms()
        rows: dict[int, CandleRow] = {}
        failures = []
        for record in records:
            if not isinstance(record, dict):
                raise TransientError("candle is not an object")
            try:
                # Native candles carry no closed flag: our clock decides.
                row = parse_candle(record, self.job.market, self.job.interval, now,
                                   closed=None if "x" in record else True)
            except InvalidRecord as exc:
                raise TransientError(f"invalid candle: {exc}") from None
            closed = row[9] if "x" in record else row[1] < now
            if not window.start <= row[0] < window.end:
                continue  # the server's overlap at the window's edges
            if not closed:
                failures.append(Failure(Span(row[0], row[1] + 1), "candle still open"))
                continue
            rows[row[0]] = row
        self.counters.fetched += len(rows)
        self.counters.empty += count_buckets(window, self.job.interval) - len(rows) - len(
            failures)
        return [rows[t] for t in sorted(rows)], failures


def fetch_snapshot(job: CandleJob, missing: RangeSet, series: Series, settings: SourceSettings,
                   on_progress: Callable[[Counters, int], None]) -> Counters:
    source = source_for(job, settings)
    writer = ShardWriter(series, series.job_folder(job.span) / "shard-000")
    done = 0
    cpu_start = time.process_time()
    with httpx.Client(timeout=30, verify=settings.verify()) as client:
        fetcher = WindowFetcher(job, source, settings, client)
        for span in missing:
            for window in windows(span, job.interval, source.max_window):
                rows, failures = fetcher.fetch(window)
                table = candle_table(job.market, job.interval, source.name, rows)
                writer.commit(window, table, failures)
                done += count_buckets(window, job.interval)
                on_progress(fetcher.counters, done)
    fetcher.counters.cpu_seconds = time.process_time() - cpu_start
    return fetcher.counters
