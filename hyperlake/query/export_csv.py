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

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

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


def read_partition(store: Store, path: Location, span: TimeRange,
                   columns: list[pl.Expr]) -> pl.DataFrame:
    """One partition's rows inside ``span``, sorted by ``t``, in the vendor columns,
    read through the lake's store (a path on disk; one GET of the object on a store)."""
    try:
        frame = pl.from_arrow(pq.read_table(store.parquet(path).source, columns=LAKE_COLUMNS))
    except (pl.exceptions.PolarsError, pa.ArrowException, OSError) as exc:
        raise unreadable(path, exc) from None
    assert isinstance(frame, pl.DataFrame)  # a table gives a frame, not a column
    return frame.filter(span.filter("t")).sort("t").select(columns)


class CsvRows:
    """The CSV text, a partition at a time; counts the rows it has produced."""

    def __init__(self, store: Store, files: list[Location], span: TimeRange,
                 columns: list[pl.Expr]) -> None:
        self.store, self.files, self.span, self.columns = store, files, span, columns
        self.rows = 0

    def __iter__(self) -> Iterator[bytes]:
        yield (",".join(CSV_HEADER) + "\n").encode()
        for path in self.files:
            frame = read_partition(self.store, path, self.span, self.columns)
            self.rows += frame.height
            yield frame.write_csv(include_header=False, float_scientific=False,
                                  null_value="").encode()


def export_csv(store: Store, files: list[Location], span: TimeRange, columns: list[pl.Expr],
               target: OutputTarget) -> int:
    """Write the header and every partition's rows to ``target``; returns the rows."""
    rows = CsvRows(store, files, span, columns)
    write_output(target, rows)
    return rows.rows
