"""Loading the lake into polars (and Arrow) for research and ML, without SQL.

Why a loader rather than ``pl.scan_parquet("data/candles/", hive_partitioning=True)``:
that raw scan reads every file in the folders, including the ``.tmp-*`` file an
atomic write leaves beside ``part-0.parquet`` while compaction runs (or after a
crash), and it turns any ``key=value`` folder above the lake into a column. It also
knows nothing of the lake's conventions. Here:

- ``market`` is matched against the markets the lake holds: the exact name, else
  the unique case-insensitive match (``btc`` → ``BTC``); ``interval`` must match
  exactly, because ``1m`` and ``1M`` are different intervals;
- ``start`` (inclusive) and ``end`` (exclusive) are ISO-8601 strings with an
  offset, timezone-aware datetimes or epoch milliseconds; naive times are refused;
- the partitions are chosen before polars sees them: only the ``part-*.parquet`` of
  the series' folder whose UTC date meets [start, end) are scanned, and the ``t``
  filter is in the plan (row groups skipped by their statistics). ``date`` is the
  UTC date of ``t`` (of ``time`` for funding), which is what the partition holds.

``features(asset_ctxs=True)`` attaches the latest asset-context snapshot (``hyperlake
update``) taken at or before each bar's open, by the same rule and the same bounded
lookback, as ``ctx_*`` columns (``ctx_time`` says how old it is).

``features`` attaches funding without lookahead: each bar gets the funding of the
latest ``funding_hour`` at or before its open time ``t`` (``join_asof`` backward),
the same rule as the ``candles_with_funding`` view of ``hyperlake.query.catalog``, and
the same bounded lookback: only the funding partitions of the span and the latest one
before it are read, whatever the lake's length.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from hyperlake.errors import UserError
from hyperlake.lake.paths import LakePaths, lake_root, open_store
from hyperlake.lake.store import Location
from hyperlake.schemas.datasets import ASSET_CTXS, CANDLES, FUNDING
from hyperlake.schemas.funding import HOURS_PER_YEAR
from hyperlake.schemas.names import Ambiguous, NameIndex, NoMatch
from hyperlake.schemas.times import Instant, to_epoch_ms, utc_datetime
from hyperlake.schemas.vocabulary import Dataset

TS = pl.Datetime("ms", "UTC")
MAX_LISTED = 30
#: The interval every funding series is kept at.
FUNDING_INTERVAL = "1h"

CANDLE_SCHEMA = CANDLES.polars_schema()
FUNDING_SCHEMA = FUNDING.polars_schema()
ASSET_CTX_SCHEMA = ASSET_CTXS.polars_schema()
#: The asset-context columns ``features(asset_ctxs=True)`` attaches, each as ``ctx_<name>``.
CTX_COLUMNS = ("time", "mark_px", "oracle_px", "mid_px", "open_interest", "funding",
               "premium", "impact_bid_px", "impact_ask_px", "day_ntl_vlm", "day_base_vlm",
               "prev_day_px")
FEATURE_SCHEMA = pl.Schema({
    "t": TS, "o": pl.Float64(), "h": pl.Float64(), "l": pl.Float64(), "c": pl.Float64(),
    "v": pl.Float64(), "log_return": pl.Float64(), "funding_rate": pl.Float64(),
    "funding_apr": pl.Float64(), "premium": pl.Float64(),
})


# --- times ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DateSpan:
    """UTC dates [first, last], both inclusive; None is unbounded."""

    first: dt.date | None = None
    last: dt.date | None = None

    def holds(self, day: dt.date) -> bool:
        return (self.first is None or day >= self.first) and (
            self.last is None or day <= self.last)


@dataclass(frozen=True)
class TimeRange:
    """[start_ms, end_ms) in epoch ms; None is unbounded."""

    start_ms: int | None = None
    end_ms: int | None = None

    @classmethod
    def parse(cls, start: Instant | None, end: Instant | None) -> TimeRange:
        lo = None if start is None else to_epoch_ms(start, "start")
        hi = None if end is None else to_epoch_ms(end, "end")
        if lo is not None and hi is not None and lo >= hi:
            raise UserError(f"end: {utc_datetime(hi).isoformat()} is not after start "
                            f"{utc_datetime(lo).isoformat()}")
        return cls(lo, hi)

    @property
    def dates(self) -> DateSpan:
        """The UTC dates of the partitions that can hold keys in the range."""
        return DateSpan(
            None if self.start_ms is None else utc_datetime(self.start_ms).date(),
            None if self.end_ms is None else utc_datetime(self.end_ms - 1).date())

    def filter(self, column: str) -> pl.Expr:
        """``column`` inside the range, as literal comparisons polars pushes down."""
        condition = pl.lit(True)
        if self.start_ms is not None:
            condition &= pl.col(column) >= pl.lit(utc_datetime(self.start_ms), TS)
        if self.end_ms is not None:
            condition &= pl.col(column) < pl.lit(utc_datetime(self.end_ms), TS)
        return condition


# --- what the lake holds ----------------------------------------------------------------

def _listing(names: list[str]) -> str:
    if not names:
        return "nothing yet"
    shown = ", ".join(names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def resolve_market(lake: Location, dataset: Dataset, market: str) -> str:
    """The lake's spelling of ``market``: the exact name, else the unique
    case-insensitive match (``btc`` → ``BTC``); UserError otherwise."""
    known = LakePaths(lake).markets(dataset)
    try:
        return NameIndex(known).match(market)
    except Ambiguous as exc:
        raise UserError(f"market: {market!r} matches {', '.join(exc.names)} in "
                        f"{lake / dataset} but for case; give the exact name") from None
    except NoMatch:
        raise UserError(f"market: {market!r} is not in {lake / dataset} "
                        f"(it has {_listing(known)})") from None


def resolve_interval(lake: Location, market: str, interval: str) -> str:
    known = LakePaths(lake).intervals("candles", market)
    if interval not in known:
        raise UserError(f"interval: {interval!r} is not in the lake for {market} "
                        f"(it has {_listing(known)}; intervals are case-sensitive)")
    return interval


def partition_files(lake: Location, dataset: Dataset, market: str, interval: str,
                    dates: DateSpan | None = None) -> list[Location]:
    """The lake files of one series, in date order, of the partitions whose UTC date is
    in ``dates`` (all when None): one listing of the series' folder."""
    return [path for p in LakePaths(lake).partition_files(dataset, market, interval)
            if p.date is not None and (dates is None or dates.holds(p.date))
            for path in p.files]


def partition_dates(lake: Location, dataset: Dataset, market: str,
                    interval: str) -> list[dt.date]:
    return [day for day, _ in LakePaths(lake).partitions(dataset, market, interval)
            if day is not None]


def _root(lake: Location | str | None) -> Location:
    return lake_root(None if lake is None else str(lake))


def candle_files(lake: Location | str | None, market: str, interval: str,
                 start: Instant | None = None,
                 end: Instant | None = None) -> list[Location]:
    """The lake files of one series whose UTC date meets [start, end), in date order."""
    root = _root(lake)
    name = resolve_market(root, "candles", market)
    return partition_files(root, "candles", name, resolve_interval(root, name, interval),
                           TimeRange.parse(start, end).dates)


# --- scans ------------------------------------------------------------------------------

def _scan_files(root: Location, files: list[Location]) -> pl.LazyFrame:
    """The chosen lake files, nothing else (no Hive parsing of the lake's own path): an
    explicit list, so nothing lists or samples a folder. On local disk polars reads
    them itself; on an object store pyarrow reads them through the lake's client
    (``Store.arrow_files`` says why not polars' own), lazily, columns and row groups
    as the query asks."""
    filesystem, names = open_store(root).arrow_files(files)
    if filesystem is None:
        return pl.scan_parquet(names, hive_partitioning=False)
    import pyarrow.dataset as ds  # an object store only

    return pl.scan_pyarrow_dataset(ds.dataset(names, format="parquet", filesystem=filesystem))


def _empty(schema: pl.Schema) -> pl.LazyFrame:
    return pl.LazyFrame(schema=schema)


def scan_candles(lake: Location | str | None, market: str, interval: str,
                 start: Instant | None = None, end: Instant | None = None) -> pl.LazyFrame:
    """Lazy candles of one market and interval, columns as the ``candles`` view,
    [start, end) on ``t``: only the partitions of those dates are scanned."""
    root = _root(lake)
    name = resolve_market(root, "candles", market)
    name_interval = resolve_interval(root, name, interval)
    span = TimeRange.parse(start, end)
    files = partition_files(root, "candles", name, name_interval, span.dates)
    if not files:
        return _empty(CANDLE_SCHEMA)
    frame = (_scan_files(root, files).filter(span.filter("t"))
             .with_columns(market=pl.lit(name, pl.String),
                           interval=pl.lit(name_interval, pl.String),
                           date=pl.col("t").dt.date()))
    return frame.select(CANDLE_SCHEMA.names())


def _funding_scan(root: Location, market: str, dates: DateSpan, rows: pl.Expr) -> pl.LazyFrame:
    """Funding of ``market`` in the partitions of ``dates``, rows filtered by ``rows``."""
    files = partition_files(root, "funding", market, FUNDING_INTERVAL, dates)
    if not files:
        return _empty(FUNDING_SCHEMA)
    frame = (_scan_files(root, files).filter(rows)
             .with_columns(market=pl.lit(market, pl.String), date=pl.col("time").dt.date()))
    return frame.select(FUNDING_SCHEMA.names())


def scan_funding(lake: Location | str | None, market: str, start: Instant | None = None,
                 end: Instant | None = None) -> pl.LazyFrame:
    """Lazy funding of one market, columns as the ``funding`` view, [start, end) on
    ``time``."""
    root = _root(lake)
    name = resolve_market(root, "funding", market)
    span = TimeRange.parse(start, end)
    return _funding_scan(root, name, span.dates, span.filter("time"))


def load_candles(lake: Location | str | None, market: str, interval: str,
                 start: Instant | None = None, end: Instant | None = None, *,
                 as_arrow: bool = False) -> pl.DataFrame | pa.Table:
    """``scan_candles(...)`` collected, sorted by ``t``: a polars DataFrame, or with
    ``as_arrow`` a pyarrow Table (plain ``string`` columns, as in the lake files)."""
    frame = scan_candles(lake, market, interval, start, end).sort("t").collect()
    return _plain_arrow(frame) if as_arrow else frame


def _plain_arrow(frame: pl.DataFrame) -> pa.Table:
    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    schema = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type)
                        else f for f in table.schema])
    return table.cast(schema)


# --- features ---------------------------------------------------------------------------

def funding_as_of(root: Location, market: str, span: TimeRange) -> pl.LazyFrame:
    """The funding rows that can be in force for a bar in ``span``: every hour before
    its end, back to the last partition before its start (which holds the hour in force
    at the start), so a one-day request reads a couple of funding files, not all."""
    dates = partition_dates(root, "funding", market, FUNDING_INTERVAL)
    first = span.dates.first
    earlier = [day for day in dates if first is not None and day < first]
    lookback = DateSpan(earlier[-1] if earlier else first, span.dates.last)
    return _funding_scan(root, market, lookback, TimeRange(None, span.end_ms)
                         .filter("funding_hour"))


def hourly_funding(funding: pl.LazyFrame, by: tuple[str, ...] = ()) -> pl.LazyFrame:
    """One row per ``funding_hour`` (per value of the ``by`` columns, e.g. ``market``),
    sorted: the earliest ``time`` of the hour stands for it (a row published later in
    the hour must not reach earlier bars)."""
    keys = [*by, "funding_hour"]
    return (funding.sort(*keys, "time")
            .unique(subset=keys, keep="first", maintain_order=True)
            .select(*keys, pl.col("fundingRate").alias("funding_rate"), "premium"))


def attach_funding(bars: pl.LazyFrame, funding: pl.LazyFrame) -> pl.LazyFrame:
    """Each bar (sorted by ``t``) gets the latest funding hour at or before ``t``."""
    joined = bars.join_asof(hourly_funding(funding), left_on="t", right_on="funding_hour",
                            strategy="backward", check_sortedness=False)
    return joined.with_columns(funding_apr=pl.col("funding_rate") * HOURS_PER_YEAR)


def with_log_return(bars: pl.LazyFrame) -> pl.LazyFrame:
    """Sorted by ``t``, plus ln(c_t / c_{t-1}) (null for the first bar)."""
    return bars.sort("t").with_columns(
        log_return=(pl.col("c") / pl.col("c").shift(1)).log())


def asset_ctxs_as_of(root: Location, market: str, span: TimeRange) -> pl.LazyFrame:
    """The snapshots that can be the latest at or before a bar in ``span``: those before
    its end, back to the last partition before its start (bounded, like funding)."""
    days = partition_dates(root, "asset_ctxs", market, "")
    first = span.dates.first
    earlier = [day for day in days if first is not None and day < first]
    lookback = DateSpan(earlier[-1] if earlier else first, span.dates.last)
    files = partition_files(root, "asset_ctxs", market, "", lookback)
    if not files:
        return _empty(ASSET_CTX_SCHEMA).select(CTX_COLUMNS)
    return _scan_files(root, files).filter(TimeRange(None, span.end_ms).filter("time")) \
        .select(CTX_COLUMNS).sort("time")


def attach_asset_ctxs(bars: pl.LazyFrame, ctxs: pl.LazyFrame) -> pl.LazyFrame:
    """Each bar (sorted by ``t``) gets the latest snapshot at or before ``t``."""
    renamed = ctxs.rename({name: f"ctx_{name}" for name in CTX_COLUMNS})
    return bars.join_asof(renamed, left_on="t", right_on="ctx_time", strategy="backward",
                          check_sortedness=False)


def features(lake: Location | str | None, market: str, interval: str,
             start: Instant | None = None, end: Instant | None = None, *,
             closed_only: bool = True, asset_ctxs: bool = False) -> pl.DataFrame:
    """A frame ready for ML, sorted by ``t``: t, o, h, l, c, v, log_return
    (ln(c_t / c_{t-1}), null for the first bar), funding_rate, funding_apr (rate * 24
    * 365), premium. Funding as of each bar's open, never later (see the module
    docstring); null where the market has no funding that early. ``closed_only``
    drops bars that were still open when fetched (their close is not final).
    ``asset_ctxs`` adds the latest asset-context snapshot at or before each open as
    ``ctx_time``, ``ctx_mark_px``, … ``ctx_prev_day_px`` (null before the first one)."""
    root = _root(lake)
    name = resolve_market(root, "candles", market)
    span = TimeRange.parse(start, end)
    bars = scan_candles(root, name, interval, start, end)
    if closed_only:
        bars = bars.filter(pl.col("x"))
    bars = with_log_return(bars.select("t", "o", "h", "l", "c", "v"))
    joined = attach_funding(bars, funding_as_of(root, name, span))
    columns = FEATURE_SCHEMA.names()
    if asset_ctxs:
        joined = attach_asset_ctxs(joined, asset_ctxs_as_of(root, name, span))
        columns += [f"ctx_{c}" for c in CTX_COLUMNS]
    return joined.select(columns).collect()
