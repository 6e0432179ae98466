"""One candle series in the vendors' public CSV schema (``hyperlake export csv``).

Why this shape: ``s,i,t,T,o,h,l,c,v,q,n,x`` is what the vendor guide publishes and
what downstream tools written against the vendors already read. Times are epoch
milliseconds; prices and volumes are plain decimals, the shortest text that reads
back as the same float64 and never an exponent (``0.00001``, ``66000``), as the
vendors' wire sends them; ``q`` is empty where the source had no quote volume; ``x``
is ``true``/``false``.

The lake is read one partition (one UTC day) at a time, so memory stays at a day of
rows whatever the range; partitions come in date order and each is sorted by ``t``,
so the file is sorted by ``t``. It is written beside the target and renamed over it:
a failed export leaves no partial file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import polars as pl
import pyarrow as pa

from hyperlake.lake.store import Location, Store
from hyperlake.query.loaders import TimeRange
from hyperlake.query.output_target import OutputTarget, write_output
from hyperlake.query.read_errors import unreadable

CSV_HEADER = ("s", "i", "t", "T", "o", "h", "l", "c", "v", "q", "n", "x")
LAKE_COLUMNS = ["t", "t_close", "o", "h", "l", "c", "v", "q", "n", "x"]


def vendor_columns(market: str, interval: str) -> list[pl.Expr]:
    return [
        pl.lit(market, pl.String).alias("s"),
        pl.lit(interval, pl.String).alias("i"),
        pl.col("t").dt.epoch("ms").alias("t"),
        pl.col("t_close").dt.epoch("ms").alias("T"),
        *(pl.col(name) for name in ("o", "h", "l", "c", "v", "q", "n", "x")),
    ]


def read_partition(path: Location, span: TimeRange, columns: list[pl.Expr],
                   source: tuple[Any, str] | None = None) -> pl.DataFrame:
    """One partition's rows inside ``span``, sorted by ``t``, in the vendor columns
    (``source``: a pyarrow filesystem and the file's name on it, for an object store:
    ``Store.arrow_files``)."""
    try:
        frame = _read_lake_columns(path, source)
    except (pl.exceptions.PolarsError, pa.ArrowException, OSError) as exc:
        raise unreadable(path, exc) from None
    return frame.filter(span.filter("t")).sort("t").select(columns)


def _read_lake_columns(path: Location, source: tuple[Any, str] | None) -> pl.DataFrame:
    if source is None:
        return pl.read_parquet(str(path), columns=LAKE_COLUMNS, hive_partitioning=False)
    import pyarrow.parquet as pq  # an object store only

    filesystem, name = source
    frame = pl.from_arrow(pq.read_table(name, columns=LAKE_COLUMNS, filesystem=filesystem))
    assert isinstance(frame, pl.DataFrame)  # a table, not a column
    return frame


class CsvRows:
    """The CSV text, a partition at a time; counts the rows it has produced."""

    def __init__(self, files: list[Location], span: TimeRange, columns: list[pl.Expr],
                 store: Store | None = None) -> None:
        self.files, self.span, self.columns = files, span, columns
        filesystem, names = store.arrow_files(files) if store is not None else (None, [])
        self.sources = [(filesystem, name) for name in names] if filesystem is not None \
            else [None] * len(files)
        self.rows = 0

    def __iter__(self) -> Iterator[bytes]:
        yield (",".join(CSV_HEADER) + "\n").encode()
        for path, source in zip(self.files, self.sources, strict=True):
            frame = read_partition(path, self.span, self.columns, source)
            self.rows += frame.height
            yield frame.write_csv(include_header=False, float_scientific=False,
                                  null_value="").encode()


def export_csv(files: list[Location], span: TimeRange, columns: list[pl.Expr],
               target: OutputTarget, store: Store | None = None) -> int:
    """Write the header and every partition's rows to ``target``; returns the rows
    (``store``: the lake's, which says how its files are read)."""
    rows = CsvRows(files, span, columns, store)
    write_output(target, rows)
    return rows.rows
