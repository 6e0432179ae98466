"""Funding: the Arrow schema and validation of ``fundingHistory`` rows.

``time`` lands milliseconds after the hour (and in 2023 some rows are off the
hour); ``funding_hour`` floors it, because an as-of join on the raw time would
attach the wrong hour. Rates are float64; the API has sent the string "NaN".
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pyarrow as pa

from hyperlake.schemas.intervals import HOUR_MS
from hyperlake.schemas.records import TS, InvalidRecord, decimal_string, rows_table

#: A rate per hour times this is its APR (no compounding, as the exchange shows it).
HOURS_PER_YEAR = 24 * 365

FUNDING_SCHEMA = pa.schema([
    pa.field("market", pa.string(), nullable=False),
    pa.field("time", TS, nullable=False),
    pa.field("funding_hour", TS, nullable=False),
    pa.field("fundingRate", pa.float64(), nullable=False),
    pa.field("premium", pa.float64(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("fetched_at", TS, nullable=False),
])

class FundingRow(NamedTuple):
    """A validated funding row; times in epoch ms."""

    time: int
    funding_hour: int  # time floored to the hour
    fundingRate: float
    premium: float
    fetched_at: int


def parse_funding(record: Any, market: str, fetched_at: int) -> FundingRow:
    if not isinstance(record, dict):
        raise InvalidRecord("funding row is not an object")
    try:
        coin, time_ms = record["coin"], record["time"]
        rate = decimal_string(record["fundingRate"], "fundingRate")
        premium = decimal_string(record["premium"], "premium")
    except KeyError as exc:
        raise InvalidRecord(f"funding row lacks field {exc.args[0]!r}") from None
    if coin != market:
        raise InvalidRecord(f"funding row for {coin!r}, asked for {market!r}")
    if isinstance(time_ms, bool) or not isinstance(time_ms, int) or time_ms < 0:
        raise InvalidRecord(f"funding time is not epoch milliseconds: {time_ms!r}")
    return FundingRow(time_ms, time_ms // HOUR_MS * HOUR_MS, rate, premium, fetched_at)


def funding_table(market: str, source: str, rows: list[FundingRow]) -> pa.Table:
    """Rows (in the order given) as a checkpoint table."""
    return rows_table(FUNDING_SCHEMA, FundingRow._fields, rows, market=market, source=source)
