"""Trades as the live stream saw them (``hyperlake stream --keep-trades``): one row per
``tid``, so bars can be rebuilt and audited offline."""

from __future__ import annotations

import pyarrow as pa

from hyperlake.schemas.records import TS

TRADE_SCHEMA = pa.schema([
    pa.field("market", pa.string(), nullable=False),
    pa.field("time", TS, nullable=False),  # exchange time
    pa.field("tid", pa.int64(), nullable=False),  # unique across markets
    pa.field("px", pa.float64(), nullable=False),
    pa.field("sz", pa.float64(), nullable=False),
    pa.field("side", pa.string(), nullable=False),  # "B" buy (taker bought), "A" sell
    pa.field("hash", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("fetched_at", TS, nullable=False),
])
