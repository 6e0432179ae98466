"""Reading what the lake holds: checkpoint rows of a series, deduplicated."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hyperlake.lake.checkpoints import Series
from hyperlake.schemas.candles import CANDLE_SCHEMA


def checkpoint_table(series: Series) -> pa.Table:
    """Every row of every part of the series, as written (duplicates included)."""
    tables = [pq.read_table(path) for _, path in series.parts()]
    if not tables:
        return CANDLE_SCHEMA.empty_table()
    return pa.concat_tables(tables)


def latest_per_key(table: pa.Table, key: str = "t") -> pa.Table:
    """One row per ``key``: the latest fetch wins (ties: the later row). Sorted by key."""
    if table.num_rows == 0:
        return table
    order = pc.sort_indices(table, sort_keys=[(key, "ascending"),
                                              ("fetched_at", "descending")])
    ordered = table.take(order)
    keys = ordered.column(key).to_numpy(zero_copy_only=False)
    keep = [0] + [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]]
    return ordered.take(pa.array(keep, pa.int64()))
