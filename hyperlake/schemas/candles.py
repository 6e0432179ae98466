"""Candles: the one Arrow schema, and validation of every source's candle records.

Decided once: prices and volumes are float64 (the wire's decimal strings carry at
most ~15 significant digits, which float64 round-trips exactly), timestamps are
UTC milliseconds. Column names avoid ``t``/``T`` together because DuckDB
identifiers are case-insensitive: open time is ``t``, close time ``t_close``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import pyarrow as pa

from hyperlake.errors import UserError
from hyperlake.schemas.intervals import next_bucket
from hyperlake.schemas.records import TS, InvalidRecord, rows_table
from hyperlake.schemas.times import parse_instant

#: Checkpoint rows (the extract → compact contract).
CANDLE_SCHEMA = pa.schema([
    pa.field("market", pa.string(), nullable=False),
    pa.field("interval", pa.string(), nullable=False),
    pa.field("t", TS, nullable=False),
    pa.field("t_close", TS, nullable=False),
    pa.field("o", pa.float64(), nullable=False),
    pa.field("h", pa.float64(), nullable=False),
    pa.field("l", pa.float64(), nullable=False),
    pa.field("c", pa.float64(), nullable=False),
    pa.field("v", pa.float64(), nullable=False),
    pa.field("q", pa.float64()),  # quote volume; null where the source has none
    pa.field("n", pa.int64(), nullable=False),
    pa.field("x", pa.bool_(), nullable=False),  # closed
    pa.field("source", pa.string(), nullable=False),
    pa.field("fetched_at", TS, nullable=False),
])


def _number(value: Any, name: str) -> float:
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise InvalidRecord(f"{name} is not a number: {value!r}") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise InvalidRecord(f"{name} is not a number: {value!r}")
    if not math.isfinite(number):
        raise InvalidRecord(f"{name} is not finite: {value!r}")
    return number


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRecord(f"{name} is not an integer: {value!r}")
    return value


def _millis(value: Any, name: str) -> int:
    if isinstance(value, str):
        try:
            return parse_instant(value, name)
        except UserError:
            raise InvalidRecord(f"{name} is not a time: {value!r}") from None
    return _integer(value, name)


# Dwellir's docs also show a long-named shape; map it onto the short one.
_LONG_NAMES = {"market": "s", "interval": "i", "bucket_start": "t", "open": "o", "high": "h",
               "low": "l", "close": "c", "volume": "v", "quote_volume": "q",
               "trades_count": "n", "closed": "x"}


def normalise_keys(record: dict[str, Any]) -> dict[str, Any]:
    if "t" in record or "bucket_start" not in record:
        return record
    return {_LONG_NAMES.get(k, k): v for k, v in record.items()}


class CandleRow(NamedTuple):
    """A validated candle; times in epoch ms. Field order is the checkpoint's."""

    t: int  # open
    t_close: int  # next open - 1
    o: float
    h: float
    l: float  # noqa: E741 - the vendors' name
    c: float
    v: float
    q: float | None  # quote volume, when the source has it
    n: int  # trades
    x: bool  # closed
    fetched_at: int


def parse_candle(record: dict[str, Any], market: str, interval: str, fetched_at: int,
                 closed: bool | None = None) -> CandleRow:
    """Validate one source record into a row. ``closed`` overrides the record's ``x``
    (native candles have none). Raises InvalidRecord."""
    rec = normalise_keys(record)
    try:
        t = _millis(rec["t"], "t")
        o, h = _number(rec["o"], "o"), _number(rec["h"], "h")
        low, c = _number(rec["l"], "l"), _number(rec["c"], "c")
        v = _number(rec["v"], "v")
        n = _integer(rec["n"], "n")
        symbol, name = rec.get("s", market), rec.get("i", interval)
    except KeyError as exc:
        raise InvalidRecord(f"candle lacks field {exc.args[0]!r}") from None
    if symbol != market or name != interval:
        raise InvalidRecord(f"candle for {symbol} {name}, asked for {market} {interval}")
    t_close = next_bucket(t, interval) - 1
    if "T" in rec and _millis(rec["T"], "T") != t_close:
        raise InvalidRecord(f"candle T {rec['T']} does not close the bucket opening at {t}")
    if v < 0 or n < 0 or min(o, h, low, c) <= 0 or low > min(o, c) or h < max(o, c):
        raise InvalidRecord(f"candle at {t} fails OHLCV sanity")
    quote = rec.get("q")
    x = rec.get("x") if closed is None else closed
    if not isinstance(x, bool):
        raise InvalidRecord(f"candle closed flag is not a boolean: {x!r}")
    return CandleRow(t, t_close, o, h, low, c, v, None if quote is None else _number(quote, "q"),
                     n, x, fetched_at)


def candle_table(market: str, interval: str, source: str, rows: list[CandleRow]) -> pa.Table:
    """Rows (in the order given) as a checkpoint table."""
    return rows_table(CANDLE_SCHEMA, CandleRow._fields, rows, market=market, interval=interval,
                      source=source)
