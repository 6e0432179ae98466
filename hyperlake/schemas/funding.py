"""Funding: the Arrow schema and validation of ``fundingHistory`` rows.

``time`` lands milliseconds after the hour (and in 2023 some rows are off the
hour); ``funding_hour`` floors it, because an as-of join on the raw time would
attach the wrong hour. Rates are float64; the API has sent the string "NaN".
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from hyperlake.schemas.candles import TS, InvalidRecord
from hyperlake.schemas.intervals import HOUR_MS

FUNDING_SCHEMA = pa.schema([
    pa.field("market", pa.string(), nullable=False),
    pa.field("time", TS, nullable=False),
    pa.field("funding_hour", TS, nullable=False),
    pa.field("fundingRate", pa.float64(), nullable=False),
    pa.field("premium", pa.float64(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("fetched_at", TS, nullable=False),
])

#: (time, funding_hour, fundingRate, premium, fetched_at)
FundingRow = tuple[int, int, float, float, int]


def _rate(value: Any, name: str) -> float:
    if not isinstance(value, str):
        raise InvalidRecord(f"{name} is not a decimal string: {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise InvalidRecord(f"{name} is not a number: {value!r}") from None
    if math.isinf(number):
        raise InvalidRecord(f"{name} is infinite: {value!r}")
    return number  # NaN is kept: the exchange sent it


def parse_funding(record: Any, market: str, fetched_at: int) -> FundingRow:
    if not isinstance(record, dict):
        raise InvalidRecord("funding row is not an object")
    try:
        coin, time_ms = record["coin"], record["time"]
        rate = _rate(record["fundingRate"], "fundingRate")
        premium = _rate(record["premium"], "premium")
    except KeyError as exc:
        raise InvalidRecord(f"funding row lacks field {exc.args[0]!r}") from None
    if coin != market:
        raise InvalidRecord(f"funding row for {coin!r}, asked for {market!r}")
    if isinstance(time_ms, bool) or not isinstance(time_ms, int) or time_ms < 0:
        raise InvalidRecord(f"funding time is not epoch milliseconds: {time_ms!r}")
    return (time_ms, time_ms // HOUR_MS * HOUR_MS, rate, premium, fetched_at)


def funding_table(market: str, source: str, rows: list[FundingRow]) -> pa.Table:
    count = len(rows)
    times, hours, rates, premiums, fetched = (list(c) for c in zip(*rows, strict=True)) if rows \
        else ([], [], [], [], [])
    return pa.table({
        "market": pa.array([market] * count, pa.string()),
        "time": pa.array(times, TS),
        "funding_hour": pa.array(hours, TS),
        "fundingRate": pa.array(rates, pa.float64()),
        "premium": pa.array(premiums, pa.float64()),
        "source": pa.array([source] * count, pa.string()),
        "fetched_at": pa.array(fetched, TS),
    }, schema=FUNDING_SCHEMA)
