"""Asset contexts: snapshots of ``metaAndAssetCtxs`` (and ``spotMetaAndAssetCtxs``).

The exchange keeps no history of a market's state vector (mark, oracle and mid price,
open interest, the funding rate in force, premium, impact prices, day volumes), so
``hyperlake update`` appends one snapshot per run: one row per market and snapshot
``time`` (our clock when the answer arrived). Numbers come as decimal strings; the
fields an illiquid or delisted market lacks (``midPx``, ``premium``, ``impactPxs``) are
null, and so is everything a spot context does not carry (funding, open interest,
oracle price, premium, impact prices).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pyarrow as pa

from hyperlake.schemas.records import TS, InvalidRecord, decimal_string, rows_table

ASSET_CTX_SCHEMA = pa.schema([
    pa.field("market", pa.string(), nullable=False),
    pa.field("time", TS, nullable=False),  # when the snapshot was answered (our clock)
    pa.field("dex", pa.string(), nullable=False),  # "" main perps, a HIP-3 dex, "spot"
    pa.field("mark_px", pa.float64()),
    pa.field("oracle_px", pa.float64()),
    pa.field("mid_px", pa.float64()),
    pa.field("open_interest", pa.float64()),
    pa.field("funding", pa.float64()),
    pa.field("premium", pa.float64()),
    pa.field("impact_bid_px", pa.float64()),
    pa.field("impact_ask_px", pa.float64()),
    pa.field("day_ntl_vlm", pa.float64()),
    pa.field("day_base_vlm", pa.float64()),
    pa.field("prev_day_px", pa.float64()),
    pa.field("source", pa.string(), nullable=False),
    pa.field("fetched_at", TS, nullable=False),
])

#: The numeric columns, and the field of the exchange's context each comes from.
NUMBERS = {"mark_px": "markPx", "oracle_px": "oraclePx", "mid_px": "midPx",
           "open_interest": "openInterest", "funding": "funding", "premium": "premium",
           "day_ntl_vlm": "dayNtlVlm", "day_base_vlm": "dayBaseVlm",
           "prev_day_px": "prevDayPx"}


class AssetCtxRow(NamedTuple):
    time: int
    dex: str
    mark_px: float | None
    oracle_px: float | None
    mid_px: float | None
    open_interest: float | None
    funding: float | None
    premium: float | None
    impact_bid_px: float | None
    impact_ask_px: float | None
    day_ntl_vlm: float | None
    day_base_vlm: float | None
    prev_day_px: float | None
    fetched_at: int


def _number(record: dict[str, Any], field: str) -> float | None:
    value = record.get(field)
    return None if value is None else decimal_string(value, field)


def _impact(record: dict[str, Any]) -> tuple[float | None, float | None]:
    value = record.get("impactPxs")
    if value is None:
        return None, None
    if not isinstance(value, list) or len(value) != 2:
        raise InvalidRecord(f"impactPxs is not a pair: {value!r}")
    bid, ask = (_number({"impactPxs": v}, "impactPxs") for v in value)
    return bid, ask


def parse_asset_ctx(record: Any, dex: str, time_ms: int, fetched_at: int) -> AssetCtxRow:
    """One market's context, validated; numbers as floats, absent fields None."""
    if not isinstance(record, dict):
        raise InvalidRecord("asset context is not an object")
    numbers = {column: _number(record, field) for column, field in NUMBERS.items()}
    bid, ask = _impact(record)
    return AssetCtxRow(time=time_ms, dex=dex, impact_bid_px=bid, impact_ask_px=ask,
                       fetched_at=fetched_at, **numbers)


def asset_ctx_table(market: str, source: str, rows: list[AssetCtxRow]) -> pa.Table:
    return rows_table(ASSET_CTX_SCHEMA, AssetCtxRow._fields, rows, market=market,
                      source=source)
