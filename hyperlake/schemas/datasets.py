"""Each dataset's shape, once: its Arrow schemas, its key, and the same columns as
DuckDB and polars see them.

The checkpoint schema (``schemas.candles``, ``schemas.funding``) is the extract →
compact contract. A lake file drops the columns its partition path already holds
(``market``, ``interval``); a reader gets them back from the path, plus ``date``, the
UTC date of the key. DuckDB's and polars' column lists are derived from these Arrow
schemas, never written out by hand a second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from hyperlake.schemas.asset_ctxs import ASSET_CTX_SCHEMA
from hyperlake.schemas.candles import CANDLE_SCHEMA
from hyperlake.schemas.funding import FUNDING_SCHEMA
from hyperlake.schemas.trades import TRADE_SCHEMA
from hyperlake.schemas.vocabulary import WITHOUT_INTERVAL, Dataset

if TYPE_CHECKING:
    import polars as pl

#: The partition keys every dataset's path holds, outermost first.
PARTITION_KEYS = ("market", "interval")
#: The column a reader adds from the ``date=`` folder.
DATE_FIELD = pa.field("date", pa.date32(), nullable=False)

_DUCKDB_TYPES = {
    pa.string(): "VARCHAR", pa.float64(): "DOUBLE", pa.int64(): "BIGINT",
    pa.bool_(): "BOOLEAN", pa.date32(): "DATE",
}


def duckdb_type(kind: pa.DataType) -> str:
    """The DuckDB type a Parquet column of Arrow type ``kind`` reads as."""
    if pa.types.is_timestamp(kind):
        return "TIMESTAMP WITH TIME ZONE" if kind.tz else "TIMESTAMP"
    return _DUCKDB_TYPES[kind]


@dataclass(frozen=True)
class DatasetSpec:
    name: Dataset
    key: str  # the time of a row: its partition (UTC date) and first sort key
    checkpoint_schema: pa.Schema
    closed_column: str | None  # candles: x
    view_keys: tuple[str, ...]  # the partition keys a reader shows as columns
    tiebreak: tuple[str, ...] = ()  # columns telling rows of one instant apart (trades: tid)

    @property
    def by_interval(self) -> bool:
        """Whether partitions have an interval level (``market=…/interval=…``)."""
        return self.name not in WITHOUT_INTERVAL

    @property
    def order(self) -> tuple[str, ...]:
        """A row's key, in sort order: one row per key within (market, interval)."""
        return (self.key, *self.tiebreak)

    @property
    def lake_schema(self) -> pa.Schema:
        """Files carry no market/interval column: the partition path holds them."""
        return pa.schema([f for f in self.checkpoint_schema if f.name not in PARTITION_KEYS])

    @property
    def view_schema(self) -> pa.Schema:
        """What a reader sees: the shown partition keys, the file's columns, ``date``."""
        keys = [self.checkpoint_schema.field(name) for name in self.view_keys]
        return pa.schema([*keys, *self.lake_schema, DATE_FIELD])

    def duckdb_columns(self) -> tuple[tuple[str, str], ...]:
        """(name, DuckDB type) of each view column, in order."""
        return tuple((f.name, duckdb_type(f.type)) for f in self.view_schema)

    def polars_schema(self) -> pl.Schema:
        """The view's columns as polars types (timestamps stay ms, UTC)."""
        import polars as pl

        frame = pl.from_arrow(self.view_schema.empty_table())
        assert isinstance(frame, pl.DataFrame)
        return frame.schema


CANDLES = DatasetSpec("candles", "t", CANDLE_SCHEMA, "x", ("market", "interval"))
FUNDING = DatasetSpec("funding", "time", FUNDING_SCHEMA, None, ("market",))
TRADES = DatasetSpec("trades", "time", TRADE_SCHEMA, None, ("market",), tiebreak=("tid",))
#: One row per market and snapshot time (``hyperlake update``: ``metaAndAssetCtxs``).
ASSET_CTXS = DatasetSpec("asset_ctxs", "time", ASSET_CTX_SCHEMA, None, ("market",))
DATASET_SPECS: dict[Dataset, DatasetSpec] = {
    spec.name: spec for spec in (CANDLES, FUNDING, TRADES, ASSET_CTXS)}
