"""The DuckDB catalog: views over the lake equal what was written, odd names decode,
empty datasets still have their columns, nothing is written, one-day queries prune
to one file, and ``candles_with_funding`` never looks ahead."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperlake.errors import UserError
from hyperlake.lake.paths import LAKE_FILE, LakePaths
from hyperlake.lake.store import Location, ObjectPath
from hyperlake.query.catalog import connect
from hyperlake.query.loaders import features, load_candles
from hyperlake.schemas.intervals import DAY_MS, HOUR_MS, MINUTE_MS
from tests.conftest import LAKE_KINDS, lake_tree, on_disk
from tests.query.test_catalog_support import (
    T0,
    Funding,
    OddLake,
    comparable,
    expected,
    files_read,
    hourly_funding,
    make_bars,
    module_lake,
    odd_names_lake,
    write_bars,
    write_funding,
)

if TYPE_CHECKING:
    from tests.s3_support import Request, S3Server

CANDLE_ORDER = ("market", "interval", "t")
FUNDING_ORDER = ("market", "time")
CANDLE_COLUMNS = ["market", "interval", "t", "t_close", "o", "h", "l", "c", "v", "q", "n",
                  "x", "source", "fetched_at", "date"]
FUNDING_COLUMNS = ["market", "time", "funding_hour", "fundingRate", "premium", "source",
                   "fetched_at", "date"]


@pytest.fixture(scope="module", params=LAKE_KINDS)
def odd_lake(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> OddLake:
    root = module_lake(request, tmp_path_factory, "odd")
    bars, funding = odd_names_lake(root)
    return root, bars, funding


def query(con: Any, sql: str) -> pa.Table:
    table: pa.Table = con.sql(sql).to_arrow_table()
    return table


# -- round trips -------------------------------------------------------------------------

def test_candles_view_equals_what_was_written(odd_lake: OddLake) -> None:
    root, bars, _ = odd_lake
    table = query(connect(root), "SELECT * FROM candles")
    assert table.column_names == CANDLE_COLUMNS
    want = expected([row for one in bars for row in one.rows()], CANDLE_ORDER)
    assert comparable(table, CANDLE_ORDER) == want


def test_funding_view_equals_what_was_written(odd_lake: OddLake) -> None:
    root, _, funding = odd_lake
    table = query(connect(root), "SELECT * FROM funding")
    assert table.column_names == FUNDING_COLUMNS
    want = expected([row for series in funding for row in series.rows()], FUNDING_ORDER)
    assert comparable(table, FUNDING_ORDER) == want


def test_view_types(odd_lake: OddLake) -> None:
    con = connect(odd_lake[0])
    described = query(con, "DESCRIBE candles_with_funding").to_pylist()
    types = {row["column_name"]: row["column_type"] for row in described}
    assert types["t"] == "TIMESTAMP WITH TIME ZONE"
    assert types["date"] == "DATE" and types["interval"] == "VARCHAR"
    assert types["n"] == "BIGINT" and types["x"] == "BOOLEAN" and types["q"] == "DOUBLE"
    assert list(types)[-4:] == ["funding_hour", "funding_rate", "funding_apr", "premium"]


@pytest.mark.parametrize("odd_lake", ["local"], indirect=True)  # reads the folder itself
def test_odd_names_decode_in_every_engine(odd_lake: OddLake) -> None:
    """DuckDB (the view), polars and pyarrow with nothing but Hive partitioning."""
    root, bars, _ = odd_lake
    assert isinstance(root, Path)
    folder = root
    want = sorted({(one.market, one.interval) for one in bars})
    assert ("kPEPE", "1m") in want and ("kPEPE", "1M") in want
    duck = query(connect(root), "SELECT DISTINCT market, interval FROM candles")
    assert sorted(map(tuple, (r.values() for r in duck.to_pylist()))) == want
    frame = pl.scan_parquet(folder / "candles", hive_partitioning=True).select(
        "market", "interval").unique().collect()
    assert sorted(frame.iter_rows()) == want
    table = ds.dataset(folder / "candles", partitioning="hive").to_table(
        columns=["market", "interval"])
    assert sorted(set(zip(*table.to_pydict().values(), strict=True))) == want


@pytest.mark.parametrize("odd_lake", ["local"], indirect=True)  # reads the folder itself
def test_polars_and_pyarrow_read_the_same_values(odd_lake: OddLake) -> None:
    root, bars, _ = odd_lake
    assert isinstance(root, Path)
    folder = root
    want = expected([row for one in bars for row in one.rows()], CANDLE_ORDER)
    frame = pl.scan_parquet(folder / "candles", hive_partitioning=True).collect()
    assert comparable(frame.to_arrow().select(CANDLE_COLUMNS), CANDLE_ORDER) == want
    table = ds.dataset(folder / "candles", partitioning="hive").to_table()
    got = comparable(table.select(CANDLE_COLUMNS), CANDLE_ORDER)
    assert [{**r, "date": str(r["date"])} for r in got] == want


def test_case_distinct_intervals_stay_apart(odd_lake: OddLake) -> None:
    con = connect(odd_lake[0])
    counts = query(con, "SELECT interval, count(*) AS n FROM candles WHERE market = 'kPEPE' "
                        "GROUP BY interval ORDER BY interval").to_pylist()
    assert counts == [{"interval": "1M", "n": 3}, {"interval": "1m", "n": 180}]


# -- empty and growing lakes -------------------------------------------------------------

def test_missing_lake_gives_empty_views_with_columns(tmp_path: Path) -> None:
    con = connect(tmp_path / "nothing-here")
    for view, columns in (("candles", CANDLE_COLUMNS), ("funding", FUNDING_COLUMNS)):
        table = query(con, f"SELECT * FROM {view}")
        assert table.num_rows == 0 and table.column_names == columns
    joined = query(con, "SELECT * FROM candles_with_funding")
    assert joined.num_rows == 0
    assert joined.column_names[-4:] == ["funding_hour", "funding_rate", "funding_apr",
                                        "premium"]
    assert not (tmp_path / "nothing-here").exists()


def test_candles_without_funding_join_to_nulls(tmp_path: Path) -> None:
    write_bars(tmp_path, make_bars("BTC", "1h", [T0 + i * HOUR_MS for i in range(3)]))
    (tmp_path / "funding").mkdir()
    rows = query(connect(tmp_path), "SELECT t, funding_rate, funding_hour FROM "
                                    "candles_with_funding ORDER BY t").to_pylist()
    assert len(rows) == 3 and all(r["funding_rate"] is None for r in rows)


def test_views_see_partitions_added_after_connect(tmp_path: Path) -> None:
    write_bars(tmp_path, make_bars("BTC", "1h", [T0]))
    con = connect(tmp_path)
    write_bars(tmp_path, make_bars("BTC", "1h", [T0 + DAY_MS]))
    assert query(con, "SELECT count(*) AS n FROM candles").to_pylist() == [{"n": 2}]


def test_leftover_temporaries_are_ignored(tmp_path: Path) -> None:
    write_bars(tmp_path, make_bars("BTC", "1h", [T0, T0 + HOUR_MS]))
    folder = on_disk(LakePaths(tmp_path).partition("candles", "BTC", "1h", "2025-01-01"))
    (folder / ".tmp-0123abcd-part-0.parquet").write_bytes(b"half a file")
    assert query(connect(tmp_path), "SELECT count(*) AS n FROM candles").to_pylist() == [
        {"n": 2}]


def test_queries_write_nothing(odd_lake: OddLake,
                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = odd_lake[0]
    before = lake_tree(root)
    monkeypatch.chdir(tmp_path)
    con = connect(root)
    query(con, "SELECT market, avg(funding_apr) FROM candles_with_funding GROUP BY ALL "
               "ORDER BY ALL")
    con.close()
    assert lake_tree(root) == before
    assert list(tmp_path.iterdir()) == []


def test_threads_are_set_and_checked(odd_lake: OddLake) -> None:
    con = connect(odd_lake[0], threads=2)
    assert query(con, "SELECT current_setting('threads') AS n").to_pylist() == [{"n": 2}]
    with pytest.raises(UserError, match="threads"):
        connect(odd_lake[0], threads=0)


def test_session_time_zone_is_utc(odd_lake: OddLake) -> None:
    """A literal without an offset compares as UTC, whatever the machine's zone."""
    con = connect(odd_lake[0])
    got = query(con, "SELECT count(*) AS n FROM candles WHERE market = 'BTC' "
                     "AND t >= '2025-01-02 00:00:00'").to_pylist()
    assert got == [{"n": 90}]


# -- pruning -----------------------------------------------------------------------------

@pytest.fixture(scope="module", params=LAKE_KINDS)
def year_lake(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Location:
    """365 days of 1h candles of BTC and ETH, and hourly funding: 365 files per series."""
    root = module_lake(request, tmp_path_factory, "year")
    opens = [T0 + i * HOUR_MS for i in range(365 * 24)]
    for seed, market in enumerate(("BTC", "ETH")):
        write_bars(root, make_bars(market, "1h", opens, seed=seed))
        write_funding(root, hourly_funding(market, T0, 365 * 24, seed=seed))
    return root


def explain_analyze(con: Any, sql: str) -> str:
    rows = query(con, f"EXPLAIN ANALYZE {sql}").to_pylist()
    return "\n".join(str(v) for row in rows for v in row.values())


def test_one_day_query_reads_one_file_of_a_year(year_lake: Location) -> None:
    con = connect(year_lake)
    paths = LakePaths(year_lake)
    assert len(paths.store.files(paths.dataset("candles"), "*/*/*/*.parquet")) == 730
    text = explain_analyze(con, "SELECT avg(c) FROM candles WHERE market = 'BTC' "
                                "AND interval = '1h' AND date = DATE '2025-06-01'")
    assert files_read(text) == [1]
    text = explain_analyze(con, "SELECT count(*) FROM funding WHERE market = 'ETH' "
                                "AND date BETWEEN DATE '2025-06-01' AND DATE '2025-06-02'")
    assert files_read(text) == [2]


def test_one_day_of_candles_with_funding_opens_at_most_three_files(
        year_lake: Location) -> None:
    """The candle side is pruned to the day; the funding side to that day and the day
    before (the lookback is bounded), not to the market's whole year."""
    con = connect(year_lake)
    sql = ("SELECT t, funding_hour FROM candles_with_funding WHERE market = 'BTC' AND "
           "interval = '1h' AND date = DATE '2025-06-01'")
    reads = sorted(files_read(explain_analyze(con, sql)))
    assert reads == [1, 2]
    rows = query(con, sql + " ORDER BY t").to_pylist()
    assert len(rows) == 24 and all(r["t"] == r["funding_hour"] for r in rows)
    week = ("SELECT count(*) FROM candles_with_funding WHERE market = 'ETH' AND "
            "interval = '1h' AND date BETWEEN DATE '2025-06-01' AND DATE '2025-06-07'")
    assert sorted(files_read(explain_analyze(con, week))) == [7, 8]


def _corrupt(path: Path) -> None:
    path.write_bytes(b"not a parquet file")


def test_one_day_reads_no_other_day(tmp_path: Path) -> None:
    """Every other day's files made unreadable: the one-day query still answers, and
    the same as over the intact lake (the funding of the day before included)."""
    opens = [T0 + i * HOUR_MS + 30 * MINUTE_MS for i in range(10 * 24)]
    write_bars(tmp_path, make_bars("BTC", "1h", opens))
    write_funding(tmp_path, hourly_funding("BTC", T0 + HOUR_MS, 10 * 24 - 1))
    sql = ("SELECT t, funding_hour, funding_rate FROM candles_with_funding WHERE "
           "market = 'BTC' AND interval = '1h' AND date = DATE '2025-01-05' ORDER BY t")
    intact = query(connect(tmp_path), sql).to_pylist()
    assert intact[0]["funding_hour"] == intact[0]["t"] - dt.timedelta(minutes=30)
    for path in tmp_path.rglob("*.parquet"):
        keep = {"candles": ["2025-01-05"], "funding": ["2025-01-05", "2025-01-04"]}
        if not any(f"date={day}" in str(path) for day in keep[path.parts[-5]]):
            _corrupt(path)
    assert query(connect(tmp_path), sql).to_pylist() == intact


def test_lookback_crosses_days_without_funding(tmp_path: Path) -> None:
    """Funding on day 0 and from noon of day 4: bars of days 2 and 3, and of day 4
    before noon, get day 0's last hour; bars after noon get their own hour."""
    write_funding(tmp_path, hourly_funding("BTC", T0, 24))
    write_funding(tmp_path, hourly_funding("BTC", T0 + 4 * DAY_MS + 12 * HOUR_MS, 12, seed=3))
    opens = [T0 + 2 * DAY_MS + i * HOUR_MS for i in range(3 * 24)]
    write_bars(tmp_path, make_bars("BTC", "1h", opens))
    rows = query(connect(tmp_path), "SELECT t, funding_hour, funding_rate FROM "
                                    "candles_with_funding ORDER BY t").to_pylist()
    last_of_day0 = T0 + 23 * HOUR_MS
    for row in rows:
        t = round(row["t"].timestamp() * 1000)
        hour = round(row["funding_hour"].timestamp() * 1000)
        assert hour == (t if t >= T0 + 4 * DAY_MS + 12 * HOUR_MS else last_of_day0)
    polars = features(tmp_path, "BTC", "1h", closed_only=False)
    assert polars["funding_rate"].to_list() == [row["funding_rate"] for row in rows]


# -- no lookahead ------------------------------------------------------------------------

def reference_funding(t: int, funding: Funding) -> tuple[int, float] | None:
    """Brute force: the latest funding hour at or before t; the earliest time within it."""
    rows = [(h, time, rate) for h, time, rate in zip(funding.hours, funding.time,
                                                     funding.rate, strict=True) if h <= t]
    if not rows:
        return None
    hour = max(h for h, _, _ in rows)
    _, rate = min((time, rate) for h, time, rate in rows if h == hour)
    return hour, rate


bar_minutes = st.lists(st.integers(0, 3 * 24 * 60 - 1), min_size=1, max_size=40, unique=True)
funding_times = st.lists(st.integers(0, 3 * DAY_MS - 1), min_size=0, max_size=40, unique=True)
rates = st.floats(-0.01, 0.01, allow_nan=False)


def check_no_lookahead(minutes: list[int], times: list[int], data: st.DataObject) -> None:
    """Bars at ``minutes`` after T0 and BTC funding at ``times`` (ms after T0): every bar
    gets what the brute force says."""
    funding = Funding("BTC", [T0 + t for t in times],
                      data.draw(st.lists(rates, min_size=len(times), max_size=len(times))),
                      [0.0] * len(times))
    decoy = Funding("ETH", [T0 + i * HOUR_MS for i in range(72)], [9.0] * 72, [9.0] * 72)
    bars = make_bars("BTC", "1m", sorted(T0 + m * MINUTE_MS for m in minutes))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_bars(root, bars)
        write_funding(root, decoy)
        if times:
            write_funding(root, funding)
        rows = query(connect(root), "SELECT t, funding_hour, funding_rate, funding_apr "
                                    "FROM candles_with_funding ORDER BY t").to_pylist()
    assert len(rows) == len(minutes)
    for row in rows:
        t = round(row["t"].timestamp() * 1000)
        want = reference_funding(t, funding)
        if want is None:
            assert row["funding_hour"] is None and row["funding_rate"] is None
            continue
        hour = round(row["funding_hour"].timestamp() * 1000)
        assert hour <= t
        assert (hour, row["funding_rate"]) == want
        assert row["funding_apr"] == pytest.approx(want[1] * 24 * 365)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(minutes=bar_minutes, times=funding_times, data=st.data())
def test_candles_with_funding_never_looks_ahead(minutes: list[int], times: list[int],
                                                data: st.DataObject) -> None:
    check_no_lookahead(minutes, times, data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(minutes=st.lists(st.integers(0, 8 * 24 * 60 - 1), min_size=1, max_size=40, unique=True),
       days=st.sets(st.integers(0, 7), max_size=8), data=st.data())
def test_no_lookahead_across_days_without_funding(minutes: list[int], days: set[int],
                                                  data: st.DataObject) -> None:
    """Funding on some days only: the bounded lookback reaches back over the gaps."""
    offsets = st.tuples(st.sampled_from(sorted(days or {0})), st.integers(0, DAY_MS - 1))
    picked = data.draw(st.lists(offsets, max_size=20 if days else 0, unique=True))
    check_no_lookahead(minutes, sorted({day * DAY_MS + ms for day, ms in picked}), data)


def test_funding_exactly_at_the_bar_open_is_attached(tmp_path: Path) -> None:
    write_bars(tmp_path, make_bars("BTC", "1h", [T0 + HOUR_MS, T0 + 2 * HOUR_MS - 1]))
    write_funding(tmp_path, Funding("BTC", [T0 + HOUR_MS, T0 + 2 * HOUR_MS + 5],
                                    [0.001, 0.002], [0.0, 0.0]))
    rows = query(connect(tmp_path), "SELECT funding_rate FROM candles_with_funding "
                                    "ORDER BY t").to_pylist()
    assert [r["funding_rate"] for r in rows] == [0.001, 0.001]


def test_connect_without_a_lake_reads_the_environment(
        odd_lake: OddLake,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """connect() reads $HYPERLAKE_LAKE, like the CLI."""
    monkeypatch.setenv("HYPERLAKE_LAKE", str(odd_lake[0]))
    assert query(connect(), "SELECT count(*) AS n FROM funding").to_pylist() == [{"n": 78}]


def test_two_events_in_one_hour_the_earlier_stands(tmp_path: Path) -> None:
    """As the emulator serves around 2023-07-17T21:00 (and off-hour rows in 2023)."""
    write_bars(tmp_path, make_bars("BTC", "1m", [T0 + HOUR_MS, T0 + HOUR_MS + 50 * MINUTE_MS]))
    write_funding(tmp_path, Funding("BTC", [T0 + HOUR_MS + 65, T0 + HOUR_MS + 30 * MINUTE_MS],
                                    [0.001, 0.002], [0.1, 0.2]))
    rows = query(connect(tmp_path), "SELECT funding_rate, premium FROM candles_with_funding "
                                    "ORDER BY t").to_pylist()
    assert rows == [{"funding_rate": 0.001, "premium": 0.1}] * 2


def test_candles_live_shows_checkpoints_before_compaction(tmp_path: Path) -> None:
    """Fresh bars (a streamer's parts, a run not compacted yet) are queryable at once;
    over the compacted lake, one row per key by compaction's rule."""
    from hyperlake.lake.checkpoints import Series, ShardWriter
    from hyperlake.lake.paths import LakePaths, SeriesKey
    from hyperlake.lake.ranges import Span
    from hyperlake.pipelines.compact import CompactJob, run_compact
    from hyperlake.schemas.candles import CandleRow, candle_table

    t0 = 1_774_828_800_000

    def commit(source: str, rows: list[CandleRow], job: int) -> None:
        series = Series(LakePaths(tmp_path), SeriesKey("candles", source, "BTC", "1m"))
        writer = ShardWriter(series, series.job_folder(Span(job, job)) / "live")
        span = Span(rows[0].t, rows[-1].t + 60_000)
        writer.commit(span, candle_table("BTC", "1m", source, rows), [])

    def bar(t: int, close: float, fetched: int, closed: bool = True) -> CandleRow:
        return CandleRow(t, t + 59_999, 10.0, 12.0, 9.0, close, 1.0, None, 3, closed, fetched)

    commit("hyperliquid", [bar(t0, 11.0, 1), bar(t0 + 60_000, 11.0, 1)], 1)
    run_compact(CompactJob(lake=tmp_path))
    commit("stream", [bar(t0 + 60_000, 11.5, 2), bar(t0 + 120_000, 10.5, 2, closed=False)], 2)
    con = connect(tmp_path)
    live = con.execute("SELECT epoch_ms(t), c, source, date FROM candles_live "
                       "WHERE market = 'BTC' AND interval = '1m' ORDER BY t").fetchall()
    assert [row[:3] for row in live] == [(t0, 11.0, "hyperliquid"), (t0 + 60_000, 11.5, "stream"),
                                         (t0 + 120_000, 10.5, "stream")]
    assert str(live[0][3]) == "2026-03-30"
    assert con.execute("SELECT count(*) FROM candles").fetchall() == [(2,)]
    # a closed bar beats a later open one, as compaction decides
    commit("stream", [bar(t0, 99.0, 3, closed=False)], 3)
    assert con.execute("SELECT c FROM candles_live WHERE epoch_ms(t) = ?",
                       [t0]).fetchall() == [(11.0,)]


@pytest.mark.parametrize("year_lake", ["s3"], indirect=True)  # counted at the S3 server
def test_one_day_over_a_year_on_the_store_gets_one_data_object(
        year_lake: Location, s3_server: S3Server) -> None:
    """Counted at the S3 server: the SQL views (through the lake's fsspec adapter) and
    the polars loaders (pyarrow over the store's pinned reads) fetch one day's object of
    the 730, and list instead of asking for each object."""
    server = s3_server

    def data_objects(seen: list[Request]) -> set[str]:
        return {r.key for r in seen if r.method in ("GET", "HEAD") and
                r.key.endswith(".parquet") and "/_state/" not in r.key}

    con = connect(year_lake)
    with server.counting() as seen:
        rows = query(con, "SELECT count(*) AS n, avg(c) AS c FROM candles WHERE market = 'BTC' "
                          "AND interval = '1h' AND date = DATE '2025-06-01'").to_pylist()
    assert rows[0]["n"] == 24
    assert isinstance(year_lake, ObjectPath)
    day = f"{year_lake.key}/candles/market=BTC/interval=1h/date=2025-06-01/part-0.parquet"
    assert data_objects(seen) == {day}
    with server.counting() as seen:
        frame = load_candles(year_lake, "BTC", "1h", "2025-06-01T00:00:00Z",
                             "2025-06-02T00:00:00Z")
    assert isinstance(frame, pl.DataFrame) and frame.height == 24
    assert data_objects(seen) == {day}


@pytest.mark.parametrize("replacements", [1, 2])
def test_a_partition_replaced_mid_query_is_read_again_or_named(
        replacements: int, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads are pinned to the version the query's listing saw: a compaction replacing
    a partition in between makes the query run once more (it sees the new rows); a
    second replacement in a row is one line, exit 3 — never old offsets read in a new
    object."""
    from hyperlake.lake import objectfs
    from hyperlake.lake.store import Replaced
    from hyperlake.query.sql_output import run_query

    lake = s3_server.lake("replaced")
    write_bars(lake, make_bars("BTC", "1h", [T0 + i * HOUR_MS for i in range(48)]))
    paths = LakePaths(lake)
    day1 = paths.partition("candles", "BTC", "1h", "2025-01-01") / LAKE_FILE
    assert isinstance(day1, ObjectPath)
    con = connect(lake)
    opened = objectfs.LakeFileSystem._open
    done: list[int] = []

    def compaction_replaces_then_open(self: Any, path: str, *args: Any, **kwargs: Any) -> Any:
        if path.endswith(str(day1).removeprefix("s3://")) and len(done) < replacements:
            n = len(done) + 1  # after the query listed it, before it reads it
            write_bars(lake, make_bars("BTC", "1h", [T0 + i * HOUR_MS for i in range(n)],
                                       seed=n))
            done.append(n)
        return opened(self, path, *args, **kwargs)

    monkeypatch.setattr(objectfs.LakeFileSystem, "_open", compaction_replaces_then_open)
    sql = "SELECT count(*) AS n FROM candles WHERE date = DATE '2025-01-01'"
    if replacements == 1:
        assert run_query(con, sql, lake).to_pylist() == [{"n": 1}]  # the new version
        assert done == [1]
        return
    with pytest.raises(Replaced) as twice:
        run_query(con, sql, lake)
    message = str(twice.value)
    assert twice.value.exit_code == 3 and "\n" not in message and "Traceback" not in message
    assert message.startswith(f"query: {day1} was replaced (by a compaction)")
