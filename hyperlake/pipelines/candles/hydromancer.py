"""Hydromancer's ``candleSnapshot``: Hyperliquid's contract plus 1s candles, ``limit``,
deep history, an exclusive ``endTime``, ``q`` and ``x``; 20 points a request."""

from __future__ import annotations

from typing import Any

from hyperlake.lake.ranges import Span
from hyperlake.net.info import InfoEndpoint
from hyperlake.pipelines.candles.job import CandleJob
from hyperlake.pipelines.candles.snapshot import SnapshotFetch
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.schemas.exchange import SNAPSHOT_MAX_CANDLES


class HydromancerSnapshots:
    name = "hydromancer"

    def __init__(self, settings: SourceSettings) -> None:
        self.settings = settings

    def endpoint(self) -> InfoEndpoint:
        return self.settings.hydromancer_info()

    def body(self, market: str, interval: str, window: Span) -> dict[str, Any]:
        return {"type": "candleSnapshot", "req": {"coin": market, "interval": interval,
                                                  "startTime": window.start,
                                                  "endTime": window.end,
                                                  "limit": SNAPSHOT_MAX_CANDLES}}

    def weight(self, candles: int) -> float:
        return 0.0  # a flat weight per request: the endpoint's base


def api(settings: SourceSettings) -> HydromancerSnapshots:
    return HydromancerSnapshots(settings)


def fetch(job: CandleJob, settings: SourceSettings) -> SnapshotFetch:
    return SnapshotFetch(job, api(settings), settings)
