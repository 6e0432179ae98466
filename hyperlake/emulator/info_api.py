"""Hyperliquid's ``POST /info`` and Hydromancer's compatible ``candleSnapshot``.

Request validation mirrors what the real servers were recorded doing: a closed set
of request shapes (anything else is a 422 text/plain), an unknown coin is a 500
with body ``null``, an empty or inverted range is an empty list.
"""

from __future__ import annotations

from typing import Any

import orjson

from hyperlake.emulator.market import Candle, Funding, Market, format_decimal
from hyperlake.emulator.replies import (
    BAD_JSON,
    NULL_500,
    UNPROCESSABLE,
    Reply,
    json_reply,
)
from hyperlake.emulator.universe import HIP3_DEX, Instrument
from hyperlake.schemas.exchange import FUNDING_PAGE_ROWS, SNAPSHOT_MAX_CANDLES
from hyperlake.schemas.intervals import (
    HYDROMANCER_INTERVALS,
    HYPERLIQUID_INTERVALS,
    bucket_start,
    shift_buckets,
)

#: Hydromancer has no quote volume for candles older than this (its ``q`` is null).
HYDROMANCER_QUOTE_FROM_MS = 1_704_067_200_000  # 2024-01-01
_U64_MAX = 2**64 - 1


class Invalid(Exception):
    """The request does not deserialize into a known request type."""


def _uint(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U64_MAX:
        raise Invalid
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid
    return value


def parse_body(body: bytes) -> dict[str, Any] | Reply:
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return BAD_JSON
    if not isinstance(request, dict) or not isinstance(request.get("type"), str):
        return UNPROCESSABLE
    return request


# -- wire shapes -------------------------------------------------------------------------


def native_candle(c: Candle, inst: Instrument, interval: str) -> dict[str, Any]:
    px = inst.px_decimals
    return {
        "t": c.open_ms,
        "T": c.close_ms,
        "s": inst.name,
        "i": interval,
        "o": format_decimal(c.o, px, ".0"),
        "c": format_decimal(c.c, px, ".0"),
        "h": format_decimal(c.h, px, ".0"),
        "l": format_decimal(c.low, px, ".0"),
        "v": format_decimal(c.volume_lots, inst.sz_decimals, ".0"),
        "n": c.trades,
    }


def hydromancer_candle(c: Candle, inst: Instrument, interval: str) -> dict[str, Any]:
    px = inst.px_decimals
    quote = (
        format_decimal(c.quote_units, px + inst.sz_decimals, ".0")
        if c.open_ms >= HYDROMANCER_QUOTE_FROM_MS
        else None
    )
    return {
        "s": inst.name,
        "i": interval,
        "t": c.open_ms,
        "T": c.close_ms,
        "o": format_decimal(c.o, px, ".0"),
        "h": format_decimal(c.h, px, ".0"),
        "l": format_decimal(c.low, px, ".0"),
        "c": format_decimal(c.c, px, ".0"),
        "v": format_decimal(c.volume_lots, inst.sz_decimals, ".0"),
        "q": quote,
        "n": c.trades,
        "x": c.closed,
    }


def funding_row(f: Funding, coin: str, nan_premium: bool = False) -> dict[str, Any]:
    return {
        "coin": coin,
        "fundingRate": f.rate,
        "premium": "NaN" if nan_premium else f.premium,
        "time": f.time_ms,
    }


# -- Hyperliquid -------------------------------------------------------------------------


class HyperliquidInfo:
    def __init__(self, market: Market, recorded_funding: dict[str, list[dict[str, Any]]],
                 funding_nan_every: int = 0) -> None:
        self.market = market
        self.universe = market.universe
        self.recorded_funding = recorded_funding
        self.funding_nan_every = funding_nan_every

    def handle(self, request: dict[str, Any], now_ms: int) -> Reply:
        kind = request["type"]
        try:
            if kind == "candleSnapshot":
                return self.candle_snapshot(request.get("req"), now_ms)
            if kind == "fundingHistory":
                return self.funding_history(request, now_ms)
            if kind == "meta":
                return self.meta(request)
            if kind == "metaAndAssetCtxs":
                return self.meta_and_asset_ctxs(request, now_ms)
            if kind == "spotMeta":
                return json_reply(self.universe.spot_meta)
            if kind == "spotMetaAndAssetCtxs":
                return self.spot_meta_and_asset_ctxs(now_ms)
            if kind == "perpDexs":
                return json_reply([None, {"name": HIP3_DEX, "fullName": "XYZ",
                                          "deployer": "0x" + "88" * 20,
                                          "oracleUpdater": None}])
        except Invalid:
            return UNPROCESSABLE
        return UNPROCESSABLE

    def candle_snapshot(self, req: Any, now_ms: int) -> Reply:
        if not isinstance(req, dict):
            raise Invalid
        coin = _string(req.get("coin"))
        interval = _string(req.get("interval"))
        start, end = _uint(req.get("startTime")), _uint(req.get("endTime"))
        if interval not in HYPERLIQUID_INTERVALS:
            raise Invalid
        inst = self.universe.get(coin)
        if inst is None:
            return NULL_500
        # Only the most recent 5000 candles of an interval exist.
        current = bucket_start(now_ms, interval)
        horizon = shift_buckets(current, interval, -(SNAPSHOT_MAX_CANDLES - 1))
        first = max(bucket_start(start, interval), horizon)
        last = min(bucket_start(end, interval), current)
        candles = self.market.candles(coin, interval, first, last, now_ms, SNAPSHOT_MAX_CANDLES)
        body = [native_candle(c, inst, interval) for c in candles]
        return json_reply(body, weight=len(body) // 60)

    def funding_history(self, request: dict[str, Any], now_ms: int) -> Reply:
        coin = _string(request.get("coin"))
        start = _uint(request.get("startTime"))
        end = _uint(request["endTime"]) if request.get("endTime") is not None else now_ms
        inst = self.universe.get(coin)
        if inst is None or not inst.has_funding:
            return NULL_500
        rows = self.funding_rows(inst, start, min(end, now_ms))
        return json_reply(rows, weight=len(rows) // 20)

    def funding_rows(self, inst: Instrument, start: int, end: int) -> list[dict[str, Any]]:
        """Rows with start <= time <= end, ascending, at most 500. Where a real capture
        exists (BTC, 2023) its rows take the place of the model's."""
        recorded = self.recorded_funding.get(inst.name, [])
        if not recorded:
            return self._model_rows(inst, start, end)
        # The recording replaces the model for every hour from its first to its last.
        span_lo = recorded[0]["time"] // 3_600_000 * 3_600_000
        after = recorded[-1]["time"] // 3_600_000 * 3_600_000 + 3_600_000
        rows = [
            *self._model_rows(inst, start, min(end, span_lo - 1)),
            *(r for r in recorded if start <= r["time"] <= end),
            *self._model_rows(inst, max(start, after), end),
        ]
        return rows[:FUNDING_PAGE_ROWS]

    def _model_rows(self, inst: Instrument, start: int, end: int) -> list[dict[str, Any]]:
        if end < start:
            return []
        hours = self.market.funding_hours(inst, start, end, limit=FUNDING_PAGE_ROWS + 1)
        rows = []
        for f in self.market.funding(inst, hours):
            if start <= f.time_ms <= end:
                rows.append(funding_row(f, inst.name, self._nan_premium(f.hour_ms)))
        return rows[:FUNDING_PAGE_ROWS]

    def _nan_premium(self, hour_ms: int) -> bool:
        every = self.funding_nan_every
        return every > 0 and (hour_ms // 3_600_000) % every == 0

    def meta(self, request: dict[str, Any]) -> Reply:
        dex = request.get("dex", "")
        if dex in ("", None):
            return json_reply(self.universe.perp_meta)
        if dex == HIP3_DEX:
            return json_reply(self.universe.hip3_meta)
        if not isinstance(dex, str):
            raise Invalid
        return NULL_500

    def meta_and_asset_ctxs(self, request: dict[str, Any], now_ms: int) -> Reply:
        meta_reply = self.meta(request)
        if meta_reply.status != 200:
            return meta_reply
        meta = orjson.loads(meta_reply.body)
        ctxs = [self.asset_ctx(a["name"], now_ms) for a in meta["universe"]]
        return json_reply([meta, ctxs])

    def asset_ctx(self, coin: str, now_ms: int) -> dict[str, Any]:
        """A context derived from the model's price path and funding at ``now``."""
        import numpy as np

        inst = self.market.instrument(coin)
        mids = self.market.mid_price(inst, np.array([now_ms, now_ms - 86_400_000], dtype=np.int64))
        px = inst.px_decimals

        def price(value: float) -> str:
            return format_decimal(round(value * 10**px), px, ".0")

        hour = now_ms // 3_600_000 * 3_600_000
        funding = self.market.funding(inst, [hour])[0]
        delisted = inst.delisted_ms is not None and inst.delisted_ms <= now_ms
        day_base = inst.liquidity * 86_400 * 400.0 / float(mids[0])
        return {
            "funding": "0.0" if delisted else funding.rate,
            "openInterest": "0.0" if delisted else f"{day_base * 3:.{inst.sz_decimals}f}",
            "prevDayPx": price(float(mids[1])),
            "dayNtlVlm": "0.0" if delisted else f"{day_base * float(mids[0]):.4f}",
            "premium": None if delisted else funding.premium,
            "oraclePx": price(float(mids[0]) * 1.0001),
            "markPx": price(float(mids[0])),
            "midPx": None if delisted else price(float(mids[0])),
            "impactPxs": None if delisted else [price(float(mids[0]) * 0.9999),
                                               price(float(mids[0]) * 1.0001)],
            "dayBaseVlm": "0.0" if delisted else f"{day_base:.{inst.sz_decimals}f}",
        }


    def spot_meta_and_asset_ctxs(self, now_ms: int) -> Reply:
        """``[spotMeta, ctxs]``: a context per pair, in the universe's order, named by
        ``coin`` (no funding, open interest, oracle or impact prices on spot)."""
        import numpy as np

        ctxs = []
        for pair in self.universe.spot_meta["universe"]:
            inst = self.market.instrument(pair["name"])
            mids = self.market.mid_price(inst, np.array([now_ms, now_ms - 86_400_000],
                                                        dtype=np.int64))
            px = inst.px_decimals

            def price(value: float, px: int = px) -> str:
                return format_decimal(round(value * 10**px), px, ".0")

            day_base = inst.liquidity * 86_400 * 40.0 / float(mids[0])
            ctxs.append({"prevDayPx": price(float(mids[1])),
                         "dayNtlVlm": f"{day_base * float(mids[0]):.4f}",
                         "markPx": price(float(mids[0])), "midPx": price(float(mids[0])),
                         "circulatingSupply": "1000000.0", "coin": inst.name,
                         "totalSupply": "1000000.0",
                         "dayBaseVlm": f"{day_base:.{inst.sz_decimals}f}"})
        return json_reply([self.universe.spot_meta, ctxs])


# -- Hydromancer -------------------------------------------------------------------------


def hydromancer_error(message: str, status: int = 400) -> Reply:
    return json_reply({"error": message}, status=status)


class HydromancerInfo:
    """Same ``candleSnapshot`` contract, plus 1s candles, ``limit``, deep history,
    an exclusive ``endTime`` and the ``q``/``x`` fields."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.universe = market.universe

    def handle(self, request: dict[str, Any], now_ms: int) -> Reply:
        if request["type"] != "candleSnapshot":
            return hydromancer_error(f"Unsupported request type: {request['type']}")
        req = request.get("req")
        if not isinstance(req, dict):
            return hydromancer_error("Missing required field: req")
        for name in ("coin", "interval", "startTime", "endTime"):
            if name not in req:
                return hydromancer_error(f"Missing required field: {name}")
        coin, interval = req["coin"], req["interval"]
        if not isinstance(coin, str):
            return hydromancer_error("coin must be a string")
        if interval not in HYDROMANCER_INTERVALS:
            return hydromancer_error("Invalid interval")
        try:
            start, end = _uint(req["startTime"]), _uint(req["endTime"])
            limit = _uint(req.get("limit", SNAPSHOT_MAX_CANDLES))
        except Invalid:
            return hydromancer_error("startTime, endTime and limit must be non-negative integers")
        if end <= start:
            return hydromancer_error("endTime must be greater than startTime")
        if not 1 <= limit <= SNAPSHOT_MAX_CANDLES:
            return hydromancer_error(f"limit must be between 1 and {SNAPSHOT_MAX_CANDLES}")
        inst = self.universe.get(coin)
        if inst is None:
            return hydromancer_error(f"Unknown coin: {coin}", 404)
        candles = self.market.candles(coin, interval, bucket_start(start, interval), end - 1,
                                      now_ms, limit)
        return json_reply([hydromancer_candle(c, inst, interval) for c in candles])
