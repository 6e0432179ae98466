"""The row index of a series: what ``hyperlake status`` reports without opening Parquet.

``_state/rows/<dataset>/market=…/interval=…/rows.json`` maps each UTC date to [rows,
first key, last key] of the series' partition, read from the file's footer (its
statistics) by compaction for the dates it writes. A summary, never a claim of
coverage: a missing or damaged index only makes status say "unknown".
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from hyperlake.lake.atomic import write_bytes_atomic
from hyperlake.schemas.datasets import DatasetSpec


class RowIndex:
    """``rows.json`` of one series, updated date by date and saved once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.days = read_row_index(path)
        self.changed = False

    def note(self, date: str, file: Path, spec: DatasetSpec) -> None:
        summary = _footer_summary(file, spec.key)
        if summary is not None and self.days.get(date) != summary:
            self.days[date] = summary
            self.changed = True

    def save(self) -> None:
        if self.changed:
            write_bytes_atomic(self.path, orjson.dumps(dict(sorted(self.days.items()))))


def read_row_index(path: Path) -> dict[str, list[int]]:
    """The index at ``path``; empty when missing or unreadable (it is only a summary)."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 3
            and all(isinstance(x, int) for x in v)}


def _footer_summary(file: Path, key: str) -> list[int] | None:
    """[rows, min key, max key] of a lake file from its footer alone."""
    try:
        meta = pq.read_metadata(file)
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
