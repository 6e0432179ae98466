"""SQL over the lake: an in-memory DuckDB whose views read the Parquet partitions.

Why views and not tables: nothing is copied or written (the database lives in
memory, the lake is only read), a view re-lists the partitions every time it is
queried (so data compacted after ``connect`` shows up), and DuckDB prunes whole
files on the Hive keys before opening any: a query that filters ``market``,
``interval`` and ``date`` reads only the matching ``part-0.parquet`` files.

The views (the session time zone is UTC; timestamps are ``TIMESTAMP WITH TIME ZONE``):

``candles``
    market, interval, t, t_close, o, h, l, c, v, q, n, x, source, fetched_at, date.
    One row per (market, interval, t); ``t`` is the bar's open time, ``x`` whether it
    was closed when fetched, ``q`` NULL where the source has no quote volume, ``date``
    the UTC date of ``t`` (the partition).
``funding``
    market, time, funding_hour, fundingRate, premium, source, fetched_at, date.
    ``funding_hour`` is ``time`` floored to the hour; ``premium`` may be NaN.
``candles_with_funding``
    every ``candles`` column, then funding_hour, funding_rate (= fundingRate),
    funding_apr (= rate * 24 * 365) and premium of the funding attached to the bar.

No lookahead: a bar gets the funding of the latest ``funding_hour`` at or before its
open time ``t`` (``candles ASOF LEFT JOIN funding ON market = market AND t >=
funding_hour``), never a later hour; NULLs where the market has no funding that
early. When an hour holds several funding rows (off-the-hour times in 2023, two
events in one hour), the earliest ``time`` stands for that hour: a row published
later in the hour must not reach the bars that open before it.

Filter ``market``, ``interval`` and ``date`` to prune files: a filter on ``t`` alone
still has to open every file's footer. The funding side of
``candles_with_funding`` is pruned by market only: the latest funding at or
before a bar may lie in any earlier partition. A dataset with no files yet gives a
view with the same columns and no rows (until the next ``connect``).
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import duckdb

from hyperlake.errors import UserError
from hyperlake.lake.paths import DATASET_FILES_GLOB, lake_root
from hyperlake.schemas.datasets import DATASET_SPECS
from hyperlake.schemas.funding import HOURS_PER_YEAR
from hyperlake.schemas.vocabulary import Dataset

HIVE_TYPES = "{'market': 'VARCHAR', 'interval': 'VARCHAR', 'date': 'DATE'}"
#: (name, DuckDB type) of each view's columns, derived from the Arrow schemas.
VIEW_COLUMNS = {name: spec.duckdb_columns() for name, spec in DATASET_SPECS.items()}

CANDLES_WITH_FUNDING = f"""
CREATE VIEW candles_with_funding AS
WITH hourly AS (
    SELECT market, funding_hour,
           arg_min(fundingRate, time) AS funding_rate,
           arg_min(premium, time) AS premium
    FROM funding
    GROUP BY market, funding_hour
)
SELECT c.*, f.funding_hour, f.funding_rate,
       f.funding_rate * {HOURS_PER_YEAR} AS funding_apr, f.premium
FROM candles AS c
ASOF LEFT JOIN hourly AS f ON c.market = f.market AND c.t >= f.funding_hour
"""


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _column_list(columns: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(_quote_identifier(name) for name, _ in columns)


def has_lake_files(dataset_folder: Path) -> bool:
    return dataset_folder.is_dir() and any(dataset_folder.glob(DATASET_FILES_GLOB))


def parquet_view_sql(name: Dataset, dataset_folder: Path) -> str:
    """A view over the dataset's partitions, Hive keys decoded and typed."""
    columns = VIEW_COLUMNS[name]
    pattern = _quote_literal(str(dataset_folder / DATASET_FILES_GLOB))
    return (f"CREATE VIEW {name} AS SELECT {_column_list(columns)} FROM read_parquet("
            f"{pattern}, hive_partitioning = true, hive_types = {HIVE_TYPES})")


def empty_view_sql(name: Dataset) -> str:
    """Same columns and types as ``parquet_view_sql``, no rows: the dataset has no files."""
    columns = ", ".join(f"CAST(NULL AS {kind}) AS {_quote_identifier(column)}"
                        for column, kind in VIEW_COLUMNS[name])
    return f"CREATE VIEW {name} AS SELECT {columns} WHERE false"


def _configure(con: duckdb.DuckDBPyConnection, threads: int | None) -> None:
    con.execute("SET TimeZone = 'UTC'")
    # An in-memory database spills to ./.tmp by default; keep the caller's folder clean.
    spill = Path(tempfile.gettempdir()) / f"hyperlake-duckdb-{uuid.uuid4().hex}"
    con.execute(f"SET temp_directory = {_quote_literal(str(spill))}")
    if threads is not None:
        con.execute(f"SET threads = {threads}")


def _check_threads(threads: int | None) -> None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise UserError(f"threads: {threads!r} is not a positive integer")


def existing_lake(cli_value: str | None) -> Path:
    """The lake root a command reads: it must exist (a typo must not read as "no data")."""
    root = lake_root(cli_value)
    if not root.is_dir():
        raise UserError(f"--lake: {root} does not exist (give --lake DIR or set "
                        "$HYPERLAKE_LAKE)")
    return root


def connect(lake: Path | str | None = None, *,
            threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the views ``candles``, ``funding`` and
    ``candles_with_funding`` over the lake at ``lake`` (default ``$HYPERLAKE_LAKE``
    or ``./data``). See the module docstring for the columns and the join rule."""
    _check_threads(threads)
    root = lake_root(None if lake is None else str(lake)).resolve()
    con = duckdb.connect(":memory:")
    _configure(con, threads)
    for name in VIEW_COLUMNS:
        folder = root / name
        con.execute(parquet_view_sql(name, folder) if has_lake_files(folder)
                    else empty_view_sql(name))
    con.execute(CANDLES_WITH_FUNDING)
    return con
