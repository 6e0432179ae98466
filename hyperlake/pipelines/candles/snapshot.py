"""Paging ``candleSnapshot`` (Hyperliquid and Hydromancer) in windows of ≤ 5000 candles.

Windows are aligned, disjoint and committed one part file each; rows outside a
window (the overlap a server includes at the edges) are dropped, so windows never
duplicate. Every request goes through the one /info client (``net.info``): paid for
before it is sent from the budget all hyperlake processes on the machine share (the
most the answer can weigh is reserved, the difference refunded once the real weight
is known), retried while transient; a window that still fails goes to the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import httpx

from hyperlake.lake.checkpoints import ShardWriter
from hyperlake.lake.ledger import Failure
from hyperlake.lake.ranges import Span, buckets_in
from hyperlake.net.info import InfoClient, InfoEndpoint, InfoStats, malformed
from hyperlake.net.retry import TransientError
from hyperlake.pipelines.candles.job import CandleJob
from hyperlake.pipelines.runner import Counters, Report, Work
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.schemas.candles import CandleRow, candle_table, parse_candle
from hyperlake.schemas.exchange import SNAPSHOT_MAX_CANDLES
from hyperlake.schemas.intervals import shift_buckets
from hyperlake.schemas.records import InvalidRecord


class SnapshotApi(Protocol):
    """What differs between the ``candleSnapshot`` providers."""

    name: str

    def endpoint(self) -> InfoEndpoint: ...
    def body(self, market: str, interval: str, window: Span) -> dict[str, Any]: ...
    def weight(self, candles: int) -> float:
        """What an answer of ``candles`` candles weighs beyond the base weight."""
        ...


def windows(span: Span, interval: str, size: int) -> list[Span]:
    out = []
    start = span.start
    while start < span.end:
        end = min(span.end, shift_buckets(start, interval, size))
        out.append(Span(start, end))
        start = end
    return out


class WindowFetcher:
    """Closed candles of one window at a time, through the /info client."""

    def __init__(self, job: CandleJob, api: SnapshotApi, settings: SourceSettings,
                 client: InfoClient) -> None:
        self.job = job
        self.api = api
        self.settings = settings
        self.client = client
        self.counters = Counters()

    def fetch(self, window: Span) -> tuple[list[CandleRow], list[Failure]]:
        """Rows of the window's closed candles, and what could not be had."""
        buckets = buckets_in([window], self.job.interval)
        before = self.client.stats.requests
        try:
            answer = self.client.call(
                self.api.body(self.job.market, self.job.interval, window),
                what=f"{self.api.name} candles {self.job.market} {self.job.interval}",
                decode=lambda records: self._rows(window, _candle_list(records)),
                reserve=self.client.endpoint.base_weight + self.api.weight(buckets),
                weigh=lambda got: self.api.weight(got.answered))
        except TransientError as exc:
            self.counters.failed += buckets
            return [], [Failure(window, exc.reason)]
        finally:
            self.counters.requests += self.client.stats.requests - before
        self.counters.fetched += len(answer.rows)
        self.counters.empty += buckets - len(answer.rows) - len(answer.failures)
        return answer.rows, answer.failures

    def _rows(self, window: Span, records: list[dict[str, Any]]) -> _Answer:
        """The window's closed candles, in order; an open one is a failure (retried by the
        next run), a malformed one makes the whole answer worth asking for again."""
        now = self.settings.now_ms()
        rows: dict[int, CandleRow] = {}
        failures = []
        for record in records:
            try:
                # Native candles carry no closed flag: our clock decides.
                row = parse_candle(record, self.job.market, self.job.interval, now,
                                   closed=None if "x" in record else True)
            except InvalidRecord as exc:
                raise TransientError(f"invalid candle: {exc}") from None
            closed = row.x if "x" in record else row.t_close < now
            if not window.start <= row.t < window.end:
                continue  # the server's overlap at the window's edges
            if not closed:
                failures.append(Failure(Span(row.t, row.t_close + 1), "candle still open"))
                continue
            rows[row.t] = row
        return _Answer([rows[t] for t in sorted(rows)], failures, len(records))


class _Answer(NamedTuple):
    rows: list[CandleRow]
    failures: list[Failure]
    answered: int  # candles in the answer, edges included (what it weighs by)


def _candle_list(answer: Any) -> list[dict[str, Any]]:
    if not isinstance(answer, list):
        raise malformed("answer is not a list")
    if not all(isinstance(record, dict) for record in answer):
        raise malformed("candle is not an object")
    return answer


class SnapshotFetch:
    """The runner's fetch for a ``candleSnapshot`` provider."""

    def __init__(self, job: CandleJob, api: SnapshotApi, settings: SourceSettings) -> None:
        self.job = job
        self.api = api
        self.settings = settings

    def units(self, work: Sequence[Work]) -> int:
        return sum(w.buckets() for w in work)

    def __call__(self, work: Sequence[Work], report: Report) -> Counters:
        done = 0
        cpu_start = time.process_time()
        stats = InfoStats()
        with httpx.Client(timeout=30, verify=self.settings.verify()) as http:
            client = InfoClient(self.api.endpoint(), http, self.settings.backoff(), stats=stats)
            fetcher = WindowFetcher(self.job, self.api, self.settings, client)
            for item in work:
                writer = ShardWriter(item.series, item.series.job_folder(item.want) / "shard-000")
                for span in item.missing:
                    for window in windows(span, self.job.interval, SNAPSHOT_MAX_CANDLES):
                        rows, failures = fetcher.fetch(window)
                        table = candle_table(self.job.market, self.job.interval, self.api.name,
                                             rows)
                        writer.commit(window, table, failures)
                        done += buckets_in([window], self.job.interval)
                        fetcher.counters.retried = stats.retried
                        report(fetcher.counters, done)
        fetcher.counters.retried = stats.retried
        fetcher.counters.cpu_seconds = time.process_time() - cpu_start
        return fetcher.counters
