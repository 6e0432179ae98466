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

from hyperlake.lake.store import Location
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
                   storage: dict[str, str] | None = None) -> pl.DataFrame:
    """One partition's rows inside ``span``, sorted by ``t``, in the vendor columns
    (``storage``: polars' options for an object store)."""
    try:
        frame = pl.read_parquet(str(path), columns=LAKE_COLUMNS, hive_partitioning=False,
                                storage_options=storage)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise unreadable(path, exc) from None
    return frame.filter(span.filter("t")).sort("t").select(columns)


class CsvRows:
    """The CSV text, a partition at a time; counts the rows it has produced."""

    def __init__(self, files: list[Location], span: TimeRange, columns: list[pl.Expr],
                 storage: dict[str, str] | None = None) -> None:
        self.files, self.span, self.columns = files, span, columns
        self.storage = storage
        self.rows = 0

    def __iter__(self) -> Iterator[bytes]:
        yield (",".join(CSV_HEADER) + "\n").encode()
        for path in self.files:
            frame = read_partition(path, self.span, self.columns, self.storage)
            self.rows += frame.height
            yield frame.write_csv(include_header=False, float_scientific=False,
                                  null_value="").encode()


def export_csv(files: list[Location], span: TimeRange, columns: list[pl.Expr],
               target: OutputTarget, storage: dict[str, str] | None = None) -> int:
    """Write the header and every partition's rows to ``target``; returns the rows."""
    rows = CsvRows(files, span, columns, storage)
    write_output(target, rows)
    return rows.rows
