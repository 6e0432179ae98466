"""Dwellir's archive index: ``GET /{API_KEY}/v1/candles?market&interval&time``.

Exactly one candle per request; range parameters are ignored; 404 for a bucket in
which nothing traded (sparse, above all at 1s) — never a fabricated candle.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import unquote

from hyperlake.emulator.market import Candle, Market, format_decimal
from hyperlake.emulator.replies import Reply, json_reply
from hyperlake.emulator.universe import Instrument
from hyperlake.schemas.exchange import DWELLIR_FLOOR_MS
from hyperlake.schemas.intervals import DWELLIR_INTERVALS, is_aligned

EMPTY_BUCKET = json_reply({"error": "no candle for this bucket"}, status=404)


def error(message: str, status: int = 400) -> Reply:
    return json_reply({"error": message}, status=status)


def parse_query(query_string: str) -> dict[str, str]:
    """First value of each parameter. (urllib's parse_qs costs 20 us a call here,
    more than serving the candle.)"""
    out: dict[str, str] = {}
    for part in query_string.split("&"):
        name, _, value = part.partition("=")
        if "%" in value or "+" in value:
            value = unquote(value.replace("+", " "))
        out.setdefault(name, value)
    return out


def parse_time(text: str) -> int | None:
    """ISO-8601 with an explicit UTC offset (``Z`` or ``+00:00``), in milliseconds."""
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp() * 1000)


def dwellir_candle(c: Candle, inst: Instrument, interval: str) -> dict[str, Any]:
    px, sz = inst.px_decimals, inst.sz_decimals
    return {
        "s": inst.name,
        "i": interval,
        "t": c.open_ms,
        "T": c.close_ms,
        "o": format_decimal(c.o, px),
        "h": format_decimal(c.h, px),
        "l": format_decimal(c.low, px),
        "c": format_decimal(c.c, px),
        "v": format_decimal(c.volume_lots, sz),
        "q": format_decimal(c.quote_units, px + sz),
        "n": c.trades,
        "x": c.closed,
    }


class DwellirIndex:
    def __init__(self, market: Market) -> None:
        self.market = market
        self.universe = market.universe

    def candle(self, query_string: str, now_ms: int) -> Reply:
        query = parse_query(query_string)
        market = query.get("market", "")
        interval = query.get("interval", "")
        time_text = query.get("time", "")
        if not market:
            return error("missing query parameter: market")
        if interval not in DWELLIR_INTERVALS:
            return error(f"invalid interval {interval!r}: expected one of 1s, 1m, 5m")
        t = parse_time(time_text)
        if t is None:
            return error(f"invalid time {time_text!r}: expected ISO-8601 UTC, e.g. "
                         "2026-03-30T23:00:00Z")
        if not is_aligned(t, interval):
            return error(f"time {time_text} is not aligned to a {interval} bucket")
        if t < DWELLIR_FLOOR_MS:
            return error("time is before the archive floor 2025-07-27T08:00:00Z")
        inst = self.universe.get(market)
        if inst is None:
            return error(f"unknown market {market!r}")
        found = self.market.candle(market, interval, t, now_ms)
        if found is None:
            return EMPTY_BUCKET
        return json_reply(dwellir_candle(found, inst, interval))
