"""Hydromancer's ``candleSnapshot``: Hyperliquid's contract plus 1s candles, ``limit``,
deep history, an exclusive ``endTime``, ``q`` and ``x``; 20 points a request."""

from __future__ import annotations

from typing import Any

from hyperlake.lake.ranges import Span
from hyperlake.net.pacing import SharedWeightBudget
from hyperlake.pipelines.settings import SourceSettings

MAX_CANDLES = 5000
WEIGHT = 20


class HydromancerSnapshots:
    name = "hydromancer"
    max_window = MAX_CANDLES

    def __init__(self, settings: SourceSettings) -> None:
        self.settings = settings
        self.key = settings.require("HYPERLAKE_HYDROMANCER_KEY", settings.hydromancer_key)

    def url(self) -> str:
        return f"{self.settings.hydromancer_url.rstrip('/')}/info"

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json", "authorization": f"Bearer {self.key}"}

    def body(self, market: str, interval: str, window: Span) -> dict[str, Any]:
        return {"type": "candleSnapshot", "req": {"coin": market, "interval": interval,
                                                  "startTime": window.start,
                                                  "endTime": window.end,
                                                  "limit": MAX_CANDLES}}

    def budget(self) -> SharedWeightBudget:
        return self.settings.hydromancer_budget()

    def weight(self, candles: int) -> float:
        return WEIGHT

    def secrets(self) -> list[str]:
        return [self.key]
