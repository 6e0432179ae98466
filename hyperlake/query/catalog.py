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
``asset_ctxs``
    market, time, dex, mark_px, oracle_px, mid_px, open_interest, funding, premium,
    impact_bid_px, impact_ask_px, day_ntl_vlm, day_base_vlm, prev_day_px, source,
    fetched_at, date: one snapshot of the exchange's asset contexts per market and
    ``hyperlake update`` run (``time`` is when it was answered).
``candles_live``
    the ``candles`` columns over the compacted lake *and* the checkpoint parts not
    compacted yet (fresh bars of ``hyperlake stream``, a run not compacted yet): one
    row per (market, interval, t), by compaction's rule (a closed bar beats an open
    one, then the later fetch). It reads every checkpoint part: for what is fresh;
    ``candles`` is the fast view of what is settled.

No lookahead: a bar gets the funding of the latest ``funding_hour`` at or before its
open time ``t``, never a later hour; NULLs where the market has no funding that
early. When an hour holds several funding rows (off-the-hour times in 2023, two
events in one hour), the earliest ``time`` stands for that hour: a row published
later in the hour must not reach the bars that open before it.

Bounded lookback: the funding in force on a bar of day ``d`` lies in the funding
partition of ``d`` itself, or else in the latest funding partition before ``d``
(compaction writes no empty partition, and each row sits in the partition of its own
UTC date). Which partition that is, is read from the file names alone (``glob``, no
file opened): normally the day before, further back only where the funding has a
gap. The as-of join (``ASOF LEFT JOIN`` on market and ``date``, ``t >=
funding_hour``) then reads only those two partitions per day: a one-day query of
``candles_with_funding`` opens one candle file and at most two funding files, however
long the lake (DuckDB prunes the funding files with the join's dynamic filter).

Filter ``market``, ``interval`` and ``date`` to prune files: a filter on ``t`` alone
still has to open every file's footer. A dataset with no files yet gives a view with
the same columns and no rows; files compacted later show up in the next query.

On an object store (``s3://``) the views read through the lake's own filesystem
adapter (``lake.objectfs``, registered with the connection: DuckDB's ``httpfs`` is
never installed or loaded, which an offline machine could not do anyway); the SQL is
the same, the root a URL. Its glob is one listing of the dataset's prefix, and every
object is read at the version that listing saw: a partition a compaction replaces
mid-query fails the query cleanly (``hyperlake sql`` runs it once more).

One unreadable file does not wedge the lake: the views take their columns from a
private schema file (no rows, written at ``connect``), never from the first lake
file, so only a query that must read a corrupt partition fails, and it names the file.

``connect`` returns a plain DuckDB connection: the power tool, from which anything
DuckDB can do is allowed (``COPY … TO`` included). ``hyperlake sql`` wraps it in a
read-only guard (``hyperlake.query.read_only``).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import uuid
from pathlib import Path

import duckdb

from hyperlake.errors import UserError
from hyperlake.lake.atomic import write_parquet_atomic
from hyperlake.lake.paths import (
    CHECKPOINT_PARTS_GLOB,
    LAKE_FILE,
    dataset_files_glob,
    lake_root,
    open_store,
)
from hyperlake.lake.store import Location
from hyperlake.schemas.datasets import DATASET_SPECS
from hyperlake.schemas.funding import HOURS_PER_YEAR
from hyperlake.schemas.vocabulary import Dataset

HIVE_TYPES = "{'market': 'VARCHAR', 'interval': 'VARCHAR', 'date': 'DATE'}"
HIVE_TYPES_WITHOUT_INTERVAL = "{'market': 'VARCHAR', 'date': 'DATE'}"
#: What DuckDB's planner is told each view holds (the first file it would otherwise
#: count from is the empty schema file). Only the order of magnitude matters: funding
#: (hourly) is smaller than candles, and both are far larger than the file listings
#: joined to them in ``candles_with_funding``, so DuckDB builds those joins on the
#: listing side and prunes the funding files with the join's dynamic filter.
PLANNER_ROWS = {"candles": 10**9, "funding": 10**7, "trades": 10**10, "asset_ctxs": 10**8}
#: (name, DuckDB type) of each view's columns, derived from the Arrow schemas.
VIEW_COLUMNS = {name: spec.duckdb_columns() for name, spec in DATASET_SPECS.items()}
#: The Hive keys of a lake file's path, taken from its last three folders (folders
#: named key=value above the lake are not the lake's).
_PATH_KEYS = ("regexp_extract(file, '/market=([^/]*)/interval=([^/]*)/date=([^/]*)/[^/]*$', "
              "['market', 'interval', 'date'])")


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _column_list(columns: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(_quote_identifier(name) for name, _ in columns)


def _files_pattern(dataset_folder: Location, name: Dataset = "candles") -> str:
    return _quote_literal(str(dataset_folder / dataset_files_glob(name)))


# -- the schema files ----------------------------------------------------------------------

@functools.cache
def _schema_folder() -> Path:
    """A private folder (mode 0700, removed at exit) for this process's schema files."""
    folder = Path(tempfile.mkdtemp(prefix="hyperlake-schema-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def schema_file(name: Dataset, *, checkpoint: bool = False) -> Path:
    """A lake file of ``name`` with no rows, laid out as a partition (so Hive parsing
    accepts it and a filter on market or date prunes it). A view lists it first:
    DuckDB takes a view's columns from the first file, and a lake file there would make
    one corrupt partition break every query of the dataset. ``checkpoint``: a
    checkpoint part's schema instead (market and interval are columns there)."""
    spec = DATASET_SPECS[name]
    kind = "checkpoint" if checkpoint else "lake"
    levels = ("market=", "interval=") if spec.by_interval else ("market=",)
    path = _schema_folder() / kind / name / Path(*levels) / "date=1970-01-01" / LAKE_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        schema = spec.checkpoint_schema if checkpoint else spec.lake_schema
        write_parquet_atomic(path, schema.empty_table())
    return path


# -- the views -----------------------------------------------------------------------------

def parquet_view_sql(name: Dataset, dataset_folder: Location) -> str:
    """A view over the dataset's partitions, Hive keys decoded and typed; no rows (but
    every column) while the dataset has no file."""
    columns = VIEW_COLUMNS[name]
    files = (f"[{_quote_literal(str(schema_file(name)))}, "
             f"{_files_pattern(dataset_folder, name)}]")
    hive = HIVE_TYPES if DATASET_SPECS[name].by_interval else HIVE_TYPES_WITHOUT_INTERVAL
    return (f"CREATE VIEW {name} AS SELECT {_column_list(columns)} FROM read_parquet("
            f"{files}, hive_partitioning = true, hive_types = {hive}, "
            f"allow_empty = true, explicit_cardinality = {PLANNER_ROWS[name]})")


def partition_days_sql(dataset_folder: Location) -> str:
    """(market, date) of every partition of a dataset, from the file names alone."""
    return (f"SELECT DISTINCT url_decode(k.market) AS market, TRY_CAST(k.date AS DATE) AS date "
            f"FROM (SELECT {_PATH_KEYS} AS k FROM glob({_files_pattern(dataset_folder)}))")


def candles_with_funding_sql(root: Location) -> str:
    """The ``candles_with_funding`` view over the views ``candles`` and ``funding`` of
    the lake at ``root`` (see the module docstring for the rule)."""
    return f"""
CREATE VIEW candles_with_funding AS
WITH candle_days AS ({partition_days_sql(root / "candles")}),
funding_days AS ({partition_days_sql(root / "funding")}),
lookback AS (
    -- the funding partitions that can hold the funding in force on a bar of day `serves`
    SELECT market, date AS serves, date FROM candle_days
    UNION ALL
    SELECT c.market, c.date AS serves, f.date
    FROM candle_days AS c ASOF JOIN funding_days AS f ON c.market = f.market AND c.date > f.date
),
in_force AS (
    -- one row per funding hour: the earliest `time` of the hour stands for it
    SELECT l.serves, f.market, f.funding_hour,
           arg_min(f.fundingRate, f.time) AS funding_rate,
           arg_min(f.premium, f.time) AS premium
    FROM funding AS f JOIN lookback AS l ON f.market = l.market AND f.date = l.date
    GROUP BY l.serves, f.market, f.funding_hour
)
SELECT c.*, f.funding_hour, f.funding_rate,
       f.funding_rate * {HOURS_PER_YEAR} AS funding_apr, f.premium
FROM candles AS c
ASOF LEFT JOIN in_force AS f
    ON c.market = f.market AND c.date = f.serves AND c.t >= f.funding_hour
"""


def candles_live_sql(root: Location) -> str:
    """The ``candles_live`` view: compacted candles and uncompacted checkpoint parts."""
    columns = [name for name, _ in VIEW_COLUMNS["candles"]]
    picked = ", ".join(_quote_identifier(c) for c in columns)
    parts = [_quote_literal(str(schema_file("candles", checkpoint=True))),
             _quote_literal(str(root / "_checkpoints" / "candles" / CHECKPOINT_PARTS_GLOB))]
    return f"""
CREATE VIEW candles_live AS
SELECT {picked} FROM (
    SELECT *, row_number() OVER (PARTITION BY market, interval, t
                                 ORDER BY x DESC, fetched_at DESC, source) AS _rank
    FROM (
        SELECT {picked} FROM candles
        UNION ALL BY NAME
        SELECT *, CAST(t AS DATE) AS date
        FROM read_parquet([{", ".join(parts)}], hive_partitioning = false, allow_empty = true)
    )
) WHERE _rank = 1
"""


# -- the connection ------------------------------------------------------------------------

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


def connect(lake: Location | str | None = None, *,
            threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the views ``candles``, ``funding`` and
    ``candles_with_funding`` over the lake at ``lake`` (default ``$HYPERLAKE_LAKE``
    or ``./data``). See the module docstring for the columns and the join rule.

    This is a normal DuckDB connection, the power tool: every statement DuckDB knows
    runs, including those that write files (``COPY … TO``, ``EXPORT DATABASE``) or
    attach databases, so point them away from the lake. ``hyperlake sql`` is the
    read-only door. No lake file is opened here."""
    _check_threads(threads)
    found = lake_root(None if lake is None else str(lake))
    store = open_store(found)
    root = store.absolute(found)
    con = duckdb.connect(":memory:")
    _configure(con, threads)
    store.attach(con)
    for name in VIEW_COLUMNS:
        con.execute(parquet_view_sql(name, root / name))
    con.execute(candles_with_funding_sql(root))
    con.execute(candles_live_sql(root))
    return con
