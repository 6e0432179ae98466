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

from pathlib import Path
from typing import BinaryIO

import polars as pl

from hyperlake.lake.atomic import atomic_path
from hyperlake.query.loaders import TimeRange

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


def write_partition(path: Path, span: TimeRange, columns: list[pl.Expr],
                    sink: BinaryIO) -> int:
    """Append one partition's rows inside ``span`` to ``sink``, sorted by ``t``."""
    frame = (pl.read_parquet(path, columns=LAKE_COLUMNS, hive_partitioning=False)
             .filter(span.filter("t")).sort("t").select(columns))
    frame.write_csv(sink, include_header=False, float_scientific=False, null_value="")
    return frame.height


def export_csv(files: list[Path], span: TimeRange, columns: list[pl.Expr],
               output: Path) -> int:
    """Write the header and every partition's rows to ``output`` atomically."""
    rows = 0
    with atomic_path(output) as tmp, open(tmp, "wb") as sink:
        sink.write((",".join(CSV_HEADER) + "\n").encode())
        for path in files:
            rows += write_partition(path, span, columns, sink)
    return rows
