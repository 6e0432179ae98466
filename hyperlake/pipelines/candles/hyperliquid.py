"""Hyperliquid's own ``candleSnapshot``: ≤ 5000 candles a call, only the most recent
5000 of an interval exist, weight 20 + 1 per 60 candles against 1200/min per IP."""

from __future__ import annotations

from typing import Any

from hyperlake.lake.ranges import Span
from hyperlake.net.pacing import SharedWeightBudget
from hyperlake.pipelines.settings import SourceSettings

MAX_CANDLES = 5000
BASE_WEIGHT = 20
CANDLES_PER_WEIGHT = 60


class HyperliquidSnapshots:
    name = "hyperliquid"
    max_window = MAX_CANDLES

    def __init__(self, settings: SourceSettings) -> None:
        self.settings = settings

    def url(self) -> str:
        return f"{self.settings.hyperliquid_url.rstrip('/')}/info"

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json"}

    def body(self, market: str, interval: str, window: Span) -> dict[str, Any]:
        # The server returns candles overlapping [startTime, endTime], both inclusive.
        return {"type": "candleSnapshot", "req": {"coin": market, "interval": interval,
                                                  "startTime": window.start,
                                                  "endTime": window.end - 1}}

    def budget(self) -> SharedWeightBudget:
        return self.settings.hyperliquid_budget()

    def weight(self, candles: int) -> float:
        return BASE_WEIGHT + candles // CANDLES_PER_WEIGHT

    def secrets(self) -> list[str]:
        return []
