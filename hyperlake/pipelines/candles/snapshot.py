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
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from hyperlake.lake.checkpoints import ShardWriter
from hyperlake.lake.ledger import Failure
from hyperlake.lake.ranges import RangeSet, Span, buckets_in
from hyperlake.net.info import InfoClient, InfoEndpoint, InfoStats, malformed
from hyperlake.net.retry import TransientError
from hyperlake.pipelines.candles.job import CandleJob
from hyperlake.pipelines.head import NOT_CLOSED, Head, larger_skew, merged, unsettled_empties
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

    def fetch(self, window: Span) -> _Answer:
        """The window's closed candles, what is provisional near the head of the
        source's data, and what could not be had."""
        buckets = buckets_in([window], self.job.interval)
        before = self.client.stats.requests
        try:
            records, source_ms = self.client.call_dated(
                self.api.body(self.job.market, self.job.interval, window),
                what=f"{self.api.name} candles {self.job.market} {self.job.interval}",
                decode=_candle_list,
                reserve=self.client.endpoint.base_weight + self.api.weight(buckets),
                weigh=lambda got: self.api.weight(len(got)))
            answer = self._rows(window, records, self.settings.head(source_ms))
        except TransientError as exc:
            return _Answer([], [], [Failure(window, exc.reason)])
        finally:
            self.counters.requests += self.client.stats.requests - before
        self.counters.clock_skew_ms = larger_skew(self.counters.clock_skew_ms,
                                                  answer.skew_ms)
        return answer

    def count(self, span: Span, answer: _Answer) -> None:
        """Add what ``answer`` (restricted to ``span``) says of the span's buckets."""
        buckets = buckets_in([span], self.job.interval)
        failed = buckets_in((f.span for f in answer.failures), self.job.interval)
        provisional = buckets_in((p.span for p in answer.provisional), self.job.interval)
        self.counters.failed += failed
        self.counters.fetched += len(answer.rows)
        self.counters.provisional += provisional
        self.counters.empty += buckets - failed - len(answer.rows) - provisional

    def _rows(self, window: Span, records: list[dict[str, Any]], head: Head) -> _Answer:
        """The window's closed candles, in order. A candle not closed yet is provisional
        (not stored), and so is an empty bucket near the head (``pipelines.head``); a
        malformed candle fails the window (``TransientError``: worth asking again)."""
        rows: dict[int, CandleRow] = {}
        open_candles: list[Failure] = []
        for record in records:
            try:
                # Native candles carry no closed flag: the head decides.
                row = parse_candle(record, self.job.market, self.job.interval, head.client_ms,
                                   closed=None if "x" in record else True)
            except InvalidRecord as exc:
                raise TransientError(f"invalid candle: {exc}") from None
            closed = row.x if "x" in record else head.closed(row.t_close)
            if not window.start <= row.t < window.end:
                continue  # the server's overlap at the window's edges
            if closed:
                rows[row.t] = row
            else:
                open_candles.append(Failure(Span(row.t, row.t_close + 1), NOT_CLOSED))
        answered = [*rows, *(f.span.start for f in open_candles)]
        provisional = merged([*open_candles, *unsettled_empties(window, self.job.interval,
                                                               head, answered)])
        return _Answer([rows[t] for t in sorted(rows)], provisional, [], head.skew_ms)


class _Answer(NamedTuple):
    rows: list[CandleRow]
    provisional: list[Failure]  # answered, but not for good yet
    failures: list[Failure]  # could not be had
    skew_ms: int = 0

    def within(self, span: Span) -> _Answer:
        """What the answer says of ``span`` only (a request may cover several spans)."""
        def clip(entries: list[Failure]) -> list[Failure]:
            return [Failure(Span(max(e.span.start, span.start), min(e.span.end, span.end)),
                            e.reason) for e in entries if e.span.overlaps(span)]

        return _Answer([r for r in self.rows if span.start <= r.t < span.end],
                       clip(self.provisional), clip(self.failures), self.skew_ms)


def requests_for(missing: RangeSet, interval: str, size: int,
                 worth: Callable[[int], bool]) -> list[tuple[Span, list[Span]]]:
    """The windows to ask (≤ ``size`` buckets each) and the spans each one answers, each
    span committed as a part of its own. Missing spans close together share a request
    when ``worth(buckets between them)`` (what the settled buckets in between add to an
    answer's weight is less than a request of their own: re-checking a provisional
    bucket just before the new ones costs no extra request)."""
    out: list[tuple[Span, list[Span]]] = []
    for span in missing:
        for window in windows(span, interval, size):
            if out:
                ask, spans = out[-1]
                between = buckets_in([Span(ask.end, window.start)], interval)
                if buckets_in([Span(ask.start, window.end)], interval) <= size and \
                        worth(between):
                    out[-1] = (Span(ask.start, window.end), [*spans, window])
                    continue
            out.append((window, [window]))
    return out


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
        import httpx  # here, not at start-up: see net.info

        with httpx.Client(timeout=30, verify=self.settings.verify()) as http:
            client = InfoClient(self.api.endpoint(), http, self.settings.backoff(), stats=stats)
            fetcher = WindowFetcher(self.job, self.api, self.settings, client)
            base = client.endpoint.base_weight
            for item in work:
                writer = ShardWriter(item.series, item.series.job_folder(item.want) / "shard-000")
                for ask, spans in requests_for(item.missing, self.job.interval,
                                               SNAPSHOT_MAX_CANDLES,
                                               lambda n: self.api.weight(n) < base):
                    answer = fetcher.fetch(ask)
                    for span in spans:
                        part = answer.within(span)
                        fetcher.count(span, part)
                        table = candle_table(self.job.market, self.job.interval, self.api.name,
                                             part.rows)
                        writer.commit(span, table, part.failures, part.provisional)
                        done += buckets_in([span], self.job.interval)
                    fetcher.counters.retried = stats.retried
                    fetcher.counters.weight = stats.weight
                    report(fetcher.counters, done)
        fetcher.counters.retried = stats.retried
        fetcher.counters.weight = stats.weight
        fetcher.counters.cpu_seconds = time.process_time() - cpu_start
        return fetcher.counters
