"""Repairing what the stream cannot vouch for, from REST, once it has settled.

A bucket the stream did not see in full (``stream.coverage``) is never guessed: once
it has ended by the settle window (``pipelines.head``), its candle is fetched with
``candleSnapshot`` — Hyperliquid's own for 1m and up within its 5000-candle horizon,
Hydromancer's (when a key is configured) for 1s and for what lies deeper — through the
same window fetcher and /info client as ``hyperlake candles``, so pacing, retries and
the head rule are the same. The rows keep the source they came from. What no source
can serve here goes to the gap ledger, saying what to run.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import httpx

from hyperlake.lake.ledger import Failure
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.lake.store import Location
from hyperlake.net.info import InfoClient, InfoStats
from hyperlake.pipelines.candles.job import CandleJob
from hyperlake.pipelines.candles.registry import HYDROMANCER, HYPERLIQUID, REGISTRY
from hyperlake.pipelines.candles.snapshot import SnapshotApi, WindowFetcher, windows
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.schemas.candles import CandleRow
from hyperlake.schemas.exchange import NATIVE_HORIZON, SNAPSHOT_MAX_CANDLES
from hyperlake.schemas.intervals import bucket_start, shift_buckets
from hyperlake.schemas.vocabulary import Source

NO_SOURCE = ("no REST source serves it here (1s and beyond the 5000-candle horizon need "
             "HYPERLAKE_HYDROMANCER_KEY); fill it with hyperlake candles --source "
             "hydromancer or dwellir")


@dataclass(frozen=True)
class Repaired:
    """One window's answer: rows (and the source they came from), what failed, what is
    not settled yet (asked again later)."""

    market: str
    interval: str
    window: Span
    source: str
    rows: list[CandleRow]
    failures: list[Failure]
    provisional: list[Failure]


class Repairer:
    """Fetches windows of candles for the streamer (one thread calls it)."""

    def __init__(self, settings: SourceSettings, lake: Location) -> None:
        self.settings = settings
        self.lake = lake
        self.stats = InfoStats()
        self._http: httpx.Client | None = None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def plan(self, interval: str, spans: RangeSet, now_ms: int
             ) -> tuple[list[tuple[Source, Span]], list[Failure]]:
        """(source, window) to fetch for the spans, and the spans no source serves."""
        native_from = shift_buckets(bucket_start(now_ms, interval), interval,
                                    -(NATIVE_HORIZON - 1))
        deep: Source | None = HYDROMANCER.name if (self.settings.hydromancer_key
                                                   and interval in HYDROMANCER.intervals) else None
        native = interval in HYPERLIQUID.intervals
        fetch: list[tuple[Source, Span]] = []
        unserved: list[Failure] = []
        for span in spans:
            parts: list[tuple[int, int, Source | None]] = [
                (span.start, min(span.end, native_from), deep),
                (max(span.start, native_from), span.end,
                 HYPERLIQUID.name if native else deep)]
            for start, end, source in parts:
                if end <= start:
                    continue
                if source is None:
                    unserved.append(Failure(Span(start, end), NO_SOURCE))
                else:
                    fetch += [(source, w) for w in windows(Span(start, end), interval,
                                                           SNAPSHOT_MAX_CANDLES)]
        return fetch, unserved

    def fetch(self, market: str, interval: str, source: Source, window: Span) -> Repaired:
        api = self._api(source)
        job = CandleJob(source=source, market=market, interval=interval,
                        start_ms=window.start, end_ms=window.end, lake=self.lake)
        client = InfoClient(api.endpoint(), self._client(), self.settings.backoff(),
                            stats=self.stats)
        answer = WindowFetcher(job, api, self.settings, client).fetch(window)
        return Repaired(market, interval, window, source, answer.rows, answer.failures,
                        answer.provisional)

    def _api(self, source: Source) -> SnapshotApi:
        """The ``candleSnapshot`` API of a registered snapshot source (its module's
        ``api``)."""
        module = importlib.import_module(REGISTRY[source].fetch_module)
        found: SnapshotApi = module.api(self.settings)
        return found

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=30, verify=self.settings.verify())
        return self._http
