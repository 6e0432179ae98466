"""Hyperliquid's own ``candleSnapshot``: ≤ 5000 candles a call, only the most recent
5000 of an interval exist, weight 20 + 1 per 60 candles against 1200/min per IP."""

from __future__ import annotations

from typing import Any

from hyperlake.lake.ranges import Span
from hyperlake.net.info import InfoEndpoint
from hyperlake.pipelines.candles.job import CandleJob
from hyperlake.pipelines.candles.snapshot import SnapshotFetch
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.schemas.exchange import CANDLES_PER_WEIGHT


class HyperliquidSnapshots:
    name = "hyperliquid"

    def __init__(self, settings: SourceSettings) -> None:
        self.settings = settings

    def endpoint(self) -> InfoEndpoint:
        return self.settings.hyperliquid_info()

    def body(self, market: str, interval: str, window: Span) -> dict[str, Any]:
        # The server returns candles overlapping [startTime, endTime], both inclusive.
        return {"type": "candleSnapshot", "req": {"coin": market, "interval": interval,
                                                  "startTime": window.start,
                                                  "endTime": window.end - 1}}

    def weight(self, candles: int) -> float:
        return candles // CANDLES_PER_WEIGHT


def api(settings: SourceSettings) -> HyperliquidSnapshots:
    return HyperliquidSnapshots(settings)


def fetch(job: CandleJob, settings: SourceSettings) -> SnapshotFetch:
    return SnapshotFetch(job, api(settings), settings)
