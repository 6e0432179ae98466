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

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hyperlake.errors import UserError
from hyperlake.lake.checkpoints import ShardWriter
from hyperlake.lake.ledger import Failure
from hyperlake.lake.paths import SeriesKey
from hyperlake.lake.ranges import RangeSet, Span, buckets_in
from hyperlake.lake.store import Location
from hyperlake.net.info import InfoClient, InfoStats, malformed
from hyperlake.net.retry import TransientError
from hyperlake.pipelines.head import larger_skew, unsettled_empties
from hyperlake.pipelines.runner import Counters, OnProgress, Report, Work, extract
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.schemas.exchange import FUNDING_PAGE_ROWS, FUNDING_ROWS_PER_WEIGHT
from hyperlake.schemas.funding import FundingRow, funding_table, parse_funding
from hyperlake.schemas.intervals import HOUR_MS
from hyperlake.schemas.records import InvalidRecord
from hyperlake.schemas.times import format_instant
from hyperlake.schemas.vocabulary import ON_500_MODES, On500, Source

SOURCE: Source = "hyperliquid"
FUNDING_INTERVAL = "1h"
#: The most a page can weigh beyond the base: every row of a full page.
PAGE_WEIGHT = FUNDING_PAGE_ROWS // FUNDING_ROWS_PER_WEIGHT


@dataclass(frozen=True, kw_only=True)
class FundingJob:
    markets: tuple[str, ...]
    start_ms: int
    end_ms: int
    lake: Location
    hours_per_window: int = 336
    on_500: On500 = "empty"
    threads: int = 8

    @property
    def span(self) -> Span:
        return Span(self.start_ms, self.end_ms)

    def key(self, market: str) -> SeriesKey:
        return SeriesKey("funding", SOURCE, market, FUNDING_INTERVAL)


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
    provisional: int = 0  # hours of the range not settled yet, all coins
    quarantined: tuple[str, ...] = ()  # broken parts moved aside, one line each

    def as_dict(self) -> dict[str, object]:
        return {
            "coins": self.coins, "start": self.start, "end": self.end,
            "rows": sum(o.rows for o in self.outcomes),
            "windows": sum(o.windows for o in self.outcomes),
            "requests": self.counters.requests, "retried": self.counters.retried,
            "failed_windows": sum(o.failed_windows for o in self.outcomes),
            "gaps": self.gaps, "provisional": self.provisional,
            "quarantined": list(self.quarantined),
            "clock_skew_s": round(self.counters.clock_skew_ms / 1000, 3),
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


class SkipCoin(Exception):
    """--on-500 skip-coin: stop working on this coin."""


def hour_windows(span: Span, hours: int) -> list[Span]:
    step = hours * HOUR_MS
    return [Span(s, min(s + step, span.end)) for s in range(span.start, span.end, step)]


def packed_windows(missing: RangeSet, hours: int) -> list[tuple[Span, list[Span]]]:
    """Windows of at most ``hours`` to ask, each with the missing windows it answers:
    windows that fit in one request together share it (a provisional hour re-checked
    beside the new ones costs no request of its own; the hours in between weigh
    1/20 each, far less than the 20 of a request)."""
    out: list[tuple[Span, list[Span]]] = []
    for span in missing:
        for window in hour_windows(span, hours):
            if out and window.end - out[-1][0].start <= hours * HOUR_MS:
                ask, windows = out[-1]
                out[-1] = (Span(ask.start, window.end), [*windows, window])
            else:
                out.append((window, [window]))
    return out


class CoinRun:
    """One coin's missing windows, in order, through the shared /info client."""

    def __init__(self, job: FundingJob, work: Work, client: InfoClient,
                 settings: SourceSettings, on_window: Callable[[int, bool], None]) -> None:
        self.job = job
        self.settings = settings
        self.work = work
        self.market = work.key.market
        self.client = client
        self.on_window = on_window
        self.writer = ShardWriter(work.series, work.series.job_folder(work.want) / "coin")
        self.outcome = CoinOutcome(self.market)
        self.skew_ms = 0
        self.provisional = 0  # hours

    def run(self) -> CoinOutcome:
        try:
            for ask, windows in packed_windows(self.work.missing, self.job.hours_per_window):
                if len(windows) == 1:
                    self._window(windows[0])
                else:
                    self._shared(ask, windows)
        except SkipCoin as exc:
            self.outcome.skipped = str(exc)
        return self.outcome

    def _shared(self, ask: Span, windows: list[Span]) -> None:
        """Windows close together answered by one request (each committed on its own);
        if it fails, each window is asked on its own (``--on-500`` and all)."""
        try:
            rows, source_ms = self._fetch_window(ask)
        except TransientError:
            for window in windows:
                self._window(window)
            return
        head = self.settings.head(source_ms)
        self.skew_ms = larger_skew(self.skew_ms, head.skew_ms)
        for window in windows:
            mine = [row for row in rows if window.start <= row.time < window.end]
            provisional = unsettled_empties(window, FUNDING_INTERVAL, head,
                                            (row.funding_hour for row in mine))
            self._commit(window, mine, None, provisional)

    def _window(self, window: Span) -> None:
        try:
            rows, source_ms = self._fetch_window(window)
        except TransientError as exc:
            if exc.reason != "http 500":
                self._commit(window, [], Failure(window, exc.reason))
                return
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
        head = self.settings.head(source_ms)
        self.skew_ms = larger_skew(self.skew_ms, head.skew_ms)
        provisional = unsettled_empties(window, FUNDING_INTERVAL, head,
                                        (row.funding_hour for row in rows))
        self._commit(window, rows, None, provisional)

    def _commit(self, window: Span, rows: list[FundingRow], failure: Failure | None,
                provisional: Sequence[Failure] = ()) -> None:
        table = funding_table(self.market, SOURCE, rows)
        self.writer.commit(window, table, [failure] if failure else [], provisional)
        self.provisional += buckets_in((p.span for p in provisional), FUNDING_INTERVAL)
        self.outcome.windows += 1
        self.outcome.rows += len(rows)
        if failure:
            self.outcome.failed_windows += 1
        self.on_window(len(rows), failure is not None)

    def _fetch_window(self, window: Span) -> tuple[list[FundingRow], int | None]:
        """Every row of the window, paged by the last time + 1 (bounds are inclusive),
        and the server's clock at the last page."""
        rows: dict[int, FundingRow] = {}
        start = window.start
        while True:
            page, source_ms = self._page(start, window.end - 1)
            for row in page:
                if window.start <= row.time < window.end:
                    rows[row.time] = row
            if len(page) < FUNDING_PAGE_ROWS:
                break
            start = page[-1].time + 1
        return [rows[t] for t in sorted(rows)], source_ms

    def _page(self, start: int, end: int) -> tuple[list[FundingRow], int | None]:
        body = {"type": "fundingHistory", "coin": self.market, "startTime": start,
                "endTime": end}

        def decode(answer: Any) -> list[FundingRow]:
            if not isinstance(answer, list):
                raise malformed("answer is not a list")
            now = int(time.time() * 1000)
            try:
                return [parse_funding(record, self.market, now) for record in answer]
            except InvalidRecord as exc:
                raise malformed(str(exc)) from None

        return self.client.call_dated(body, what=f"funding {self.market}", decode=decode,
                                      reserve=self.client.endpoint.base_weight + PAGE_WEIGHT,
                                      weigh=lambda rows: len(rows) // FUNDING_ROWS_PER_WEIGHT)


class FundingFetch:
    """The runner's fetch for funding: coins in threads, windows in order per coin."""

    def __init__(self, job: FundingJob, settings: SourceSettings) -> None:
        self.job = job
        self.settings = settings
        self.stats = InfoStats()
        self.outcomes: dict[str, CoinOutcome] = {}

    def units(self, work: Sequence[Work]) -> int:
        return sum(len(windows) for item in work
                   for _, windows in packed_windows(item.missing, self.job.hours_per_window))

    def __call__(self, work: Sequence[Work], report: Report) -> Counters:
        lock = threading.Lock()
        progress = _Progress()

        def window_done(rows: int, failed: bool) -> None:
            with lock:
                progress.windows += 1
                progress.rows += rows
                progress.failed += failed
                report(self._counters(progress), progress.windows)

        import httpx

        with httpx.Client(timeout=30, verify=self.settings.verify()) as http:
            client = InfoClient(self.settings.hyperliquid_info(), http, self.settings.backoff(),
                                stats=self.stats)
            runs = [CoinRun(self.job, item, client, self.settings, window_done)
                    for item in work]
            with ThreadPoolExecutor(max_workers=max(1, self.job.threads)) as pool:
                for outcome in pool.map(lambda run: run.run(), runs):
                    self.outcomes[outcome.market] = outcome
        counters = self._counters(progress)
        for run in runs:
            counters.clock_skew_ms = larger_skew(counters.clock_skew_ms, run.skew_ms)
            counters.provisional += run.provisional
        return counters

    def _counters(self, progress: _Progress) -> Counters:
        return Counters(fetched=progress.rows, retried=self.stats.retried,
                        failed=progress.failed, requests=self.stats.requests,
                        weight=self.stats.weight)


@dataclass
class _Progress:
    windows: int = 0
    rows: int = 0
    failed: int = 0


def run_funding(job: FundingJob, settings: SourceSettings,
                on_progress: OnProgress | None = None) -> FundingSummary:
    fetch = FundingFetch(job, settings)
    result = extract(job.lake, [(job.key(m), job.span) for m in job.markets], fetch,
                     on_progress)
    outcomes = [fetch.outcomes.get(m, CoinOutcome(m)) for m in job.markets]
    counters = result.counters
    want = RangeSet([job.span])
    gaps = sum(1 for entries in result.gaps.values() for g in entries
               if want.intersect(RangeSet([g.span])))
    provisional = sum(buckets_in(spans, FUNDING_INTERVAL)
                      for spans in result.provisional.values())
    return FundingSummary(len(job.markets), format_instant(job.start_ms),
                          format_instant(job.end_ms), outcomes, counters, gaps,
                          result.seconds, fetch.stats.weight, provisional,
                          tuple(q.line(job.lake) for q in result.quarantined))
