"""The row index of a series: what ``hyperlake status`` reports without opening Parquet.

``_state/rows/<dataset>/market=…/interval=…/rows.json`` maps each UTC date to [rows,
first key, last key] of the series' partition, read from the file's footer (its
statistics) by compaction for the dates it writes. A summary, never a claim of
coverage: a missing or damaged index only makes status say "unknown".
"""

from __future__ import annotations

import datetime as dt

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from hyperlake.lake.store import Location, Store
from hyperlake.schemas.datasets import DatasetSpec


class RowIndex:
    """``rows.json`` of one series, updated date by date and saved once."""

    def __init__(self, store: Store, path: Location) -> None:
        self.store = store
        self.path = path
        self.days = read_row_index(store, path)
        self.changed = False

    def note(self, date: str, file: Location, spec: DatasetSpec) -> None:
        summary = _footer_summary(self.store, file, spec.key)
        if summary is not None and self.days.get(date) != summary:
            self.days[date] = summary
            self.changed = True

    def save(self) -> None:
        if self.changed:
            self.store.put(self.path, orjson.dumps(dict(sorted(self.days.items()))))


def read_row_index(store: Store, path: Location) -> dict[str, list[int]]:
    """The index at ``path``; empty when missing or unreadable (it is only a summary)."""
    try:
        data = orjson.loads(store.read(path))
    except (OSError, orjson.JSONDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 3
            and all(isinstance(x, int) for x in v)}


def _footer_summary(store: Store, file: Location, key: str) -> list[int] | None:
    """[rows, min key, max key] of a lake file from its footer alone."""
    try:
        meta = pq.read_metadata(store.parquet(file, footer_only=True).source)
        column = meta.schema.names.index(key)
        lows, highs = [], []
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(column).statistics
            if stats is None or not stats.has_min_max:
                return [meta.num_rows, -1, -1]
            lows.append(stats.min)
            highs.append(stats.max)
    except (OSError, ValueError, pa.ArrowException):
        return None
    if not lows:
        return [meta.num_rows, -1, -1]
    return [meta.num_rows, _ms(min(lows)), _ms(max(highs))]


def _ms(value: object) -> int:
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    assert isinstance(value, int)
    return value
