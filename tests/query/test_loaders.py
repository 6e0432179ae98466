"""The polars loaders: lazy scans pruned to the partitions asked for, values equal to
what was written, markets matched by case, times explicit, and ``features`` with
funding attached without lookahead."""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hyperlake
from hyperlake.errors import UserError
from hyperlake.lake.paths import LakePaths
from hyperlake.lake.store import Location
from hyperlake.query import catalog, loaders
from hyperlake.query.loaders import (
    candle_files,
    features,
    load_candles,
    scan_candles,
    scan_funding,
)
from hyperlake.schemas.intervals import DAY_MS, HOUR_MS, MINUTE_MS
from hyperlake.schemas.times import to_epoch_ms
from tests.conftest import LAKE_KINDS, on_disk
from tests.query.test_catalog_support import (
    T0,
    Bars,
    Funding,
    OddLake,
    comparable,
    expected,
    hourly_funding,
    make_bars,
    module_lake,
    odd_names_lake,
    polars_sources,
    sorted_column,
    write_bars,
    write_funding,
)

JUNE_1 = "2025-06-01T00:00:00Z"
JUNE_2 = "2025-06-02T00:00:00Z"


@pytest.fixture(scope="module", params=LAKE_KINDS)
def odd_lake(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> OddLake:
    root = module_lake(request, tmp_path_factory, "odd")
    bars, funding = odd_names_lake(root)
    return root, bars, funding


@pytest.fixture(scope="module", params=LAKE_KINDS)
def year_lake(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Location:
    root = module_lake(request, tmp_path_factory, "year")
    write_bars(root, make_bars("BTC", "1h", [T0 + i * HOUR_MS for i in range(365 * 24)]))
    write_funding(root, hourly_funding("BTC", T0, 365 * 24))
    return root


def bars_of(bars: list[Bars], market: str, interval: str) -> Bars:
    return next(b for b in bars if (b.market, b.interval) == (market, interval))


# -- scans -------------------------------------------------------------------------------

def test_scan_is_lazy_and_reads_one_day_of_a_year(year_lake: Location) -> None:
    """The files are chosen by name before anything is read. On disk polars' plan names
    them; on an object store pyarrow reads them (a Python scan in the plan), and the
    objects a one-day load fetches are counted at the server (test_catalog)."""
    frame = scan_candles(year_lake, "BTC", "1h", JUNE_1, JUNE_2)
    assert isinstance(frame, pl.LazyFrame)
    assert [str(f).split("/")[-2] for f in candle_files(year_lake, "BTC", "1h", JUNE_1,
                                                         JUNE_2)] == ["date=2025-06-01"]
    assert len(candle_files(year_lake, "BTC", "1h", JUNE_1, "2025-06-01T00:00:00.001Z")) == 1
    assert len(candle_files(year_lake, "BTC", "1h")) == 365
    if isinstance(year_lake, Path):
        plan = frame.explain()
        assert polars_sources(plan) == 1 and "date=2025-06-01" in plan
        assert polars_sources(scan_candles(year_lake, "BTC", "1h").explain()) == 365
    else:
        assert "PYTHON SCAN" in frame.explain()
    assert frame.collect().height == 24


def test_scan_candles_equals_what_was_written(odd_lake: OddLake) -> None:
    root, bars, _ = odd_lake
    for one in bars:
        frame = scan_candles(root, one.market, one.interval).collect()
        assert frame.columns == list(loaders.CANDLE_SCHEMA.names())
        assert frame.schema == loaders.CANDLE_SCHEMA
        assert comparable(frame.to_arrow(), ["t"]) == expected(one.rows(), ["t"])


def test_scan_funding_equals_what_was_written(odd_lake: OddLake) -> None:
    root, _, funding = odd_lake
    for series in funding:
        frame = scan_funding(root, series.market).collect()
        assert frame.schema == loaders.FUNDING_SCHEMA
        assert comparable(frame.to_arrow(), ["time"]) == expected(series.rows(), ["time"])


def test_scan_funding_filters_on_time(odd_lake: OddLake) -> None:
    root = odd_lake[0]
    frame = scan_funding(root, "kpepe", T0 + HOUR_MS, T0 + 3 * HOUR_MS).collect()
    assert frame["market"].to_list() == ["kPEPE", "kPEPE"]
    assert [round(t.timestamp() * 1000) for t in frame["funding_hour"]] == [
        T0 + HOUR_MS, T0 + 2 * HOUR_MS]


def test_start_is_inclusive_end_exclusive_across_midnight(
        odd_lake: OddLake) -> None:
    root, bars, _ = odd_lake
    btc = bars_of(bars, "BTC", "1m")
    start, end = btc.t[10], btc.t[150]
    frame = load_candles(root, "BTC", "1m", start, end)
    assert isinstance(frame, pl.DataFrame)
    got = [round(t.timestamp() * 1000) for t in frame["t"]]
    assert got == btc.t[10:150]
    assert {str(d) for d in frame["date"]} == {"2025-01-01", "2025-01-02"}


def test_load_candles_as_arrow(odd_lake: OddLake) -> None:
    root, bars, _ = odd_lake
    table = load_candles(root, "xyz:XYZ100", "1h", as_arrow=True)
    assert isinstance(table, pa.Table)
    assert table.schema.field("market").type == pa.string()
    assert table.schema.field("t").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("date").type == pa.date32()
    assert sorted_column(table, "t")
    assert comparable(table, ["t"]) == expected(bars_of(bars, "xyz:XYZ100", "1h").rows(),
                                                ["t"])


def test_empty_range_is_an_empty_frame_with_the_columns(
        odd_lake: OddLake) -> None:
    frame = load_candles(odd_lake[0], "BTC", "1m", "2030-01-01T00:00:00Z")
    assert isinstance(frame, pl.DataFrame)
    assert frame.height == 0 and frame.schema == loaders.CANDLE_SCHEMA
    assert features(odd_lake[0], "BTC", "1m", "2030-01-01T00:00:00Z").schema == \
        loaders.FEATURE_SCHEMA


def test_leftover_temporaries_are_skipped(tmp_path: Path) -> None:
    write_bars(tmp_path, make_bars("BTC", "1h", [T0, T0 + HOUR_MS]))
    folder = on_disk(LakePaths(tmp_path).partition("candles", "BTC", "1h", "2025-01-01"))
    (folder / ".tmp-0123abcd-part-0.parquet").write_bytes(b"half a file")
    assert scan_candles(tmp_path, "BTC", "1h").collect().height == 2


def test_lake_path_with_an_equals_sign(tmp_path: Path) -> None:
    """A ``key=value`` folder above the lake must not become a column."""
    root = tmp_path / "run=7" / "lake"
    write_bars(root, make_bars("BTC", "1h", [T0]))
    assert scan_candles(root, "BTC", "1h").collect().columns == list(
        loaders.CANDLE_SCHEMA.names())


# -- names -------------------------------------------------------------------------------

def test_market_case_is_forgiven_when_unique(odd_lake: OddLake) -> None:
    root = odd_lake[0]
    assert scan_candles(root, "btc", "1m").collect()["market"].unique().to_list() == ["BTC"]
    assert scan_candles(root, "KPEPE", "1M").collect().height == 3
    assert scan_candles(root, "XYZ:xyz100", "1h").collect().height == 30


def test_intervals_are_case_sensitive(odd_lake: OddLake) -> None:
    root = odd_lake[0]
    assert scan_candles(root, "kPEPE", "1m").collect().height == 180
    assert scan_candles(root, "kPEPE", "1M").collect().height == 3
    with pytest.raises(UserError, match=r"interval: '1D'.*it has 1d"):
        scan_candles(root, "@107", "1D")


def test_ambiguous_case_needs_the_exact_name(tmp_path: Path) -> None:
    write_bars(tmp_path, make_bars("kPEPE", "1h", [T0]))
    write_bars(tmp_path, make_bars("KPEPE", "1h", [T0, T0 + HOUR_MS]))
    assert scan_candles(tmp_path, "kPEPE", "1h").collect().height == 1
    assert scan_candles(tmp_path, "KPEPE", "1h").collect().height == 2
    with pytest.raises(UserError, match="market: 'kpepe' matches KPEPE, kPEPE"):
        scan_candles(tmp_path, "kpepe", "1h")


def test_unknown_market_lists_what_the_lake_has(odd_lake: OddLake) -> None:
    with pytest.raises(UserError, match=r"market: 'ETH' .*@107, BTC, kPEPE, xyz:XYZ100"):
        scan_candles(odd_lake[0], "ETH", "1m")
    with pytest.raises(UserError, match=r"market: '@107' .*funding"):
        scan_funding(odd_lake[0], "@107")


def test_empty_lake_says_so(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nothing yet"):
        scan_candles(tmp_path, "BTC", "1m")


# -- times -------------------------------------------------------------------------------

def test_every_spelling_of_an_instant_agrees() -> None:
    ms = 1_748_736_000_000
    assert to_epoch_ms("2025-06-01T00:00:00Z", "start") == ms
    assert to_epoch_ms("2025-06-01T02:00:00+02:00", "start") == ms
    assert to_epoch_ms(dt.datetime(2025, 6, 1, tzinfo=dt.UTC), "start") == ms
    assert to_epoch_ms(ms, "start") == ms
    assert to_epoch_ms("2025-06-01T00:00:00.123Z", "start") == ms + 123


@pytest.mark.parametrize("value, message", [
    (dt.datetime(2025, 6, 1), "start: 2025-06-01T00:00:00 has no timezone"),
    ("2025-06-01T00:00:00", "start: '2025-06-01T00:00:00' has no timezone"),
    ("yesterday", "start: 'yesterday' is not an ISO-8601 time"),
    (dt.date(2025, 6, 1), "start: date is not a time"),
    (True, "start: True is not a time"),
])
def test_bad_instants_are_user_errors(value: object, message: str,
                                      odd_lake: OddLake) -> None:
    with pytest.raises(UserError, match=message):
        scan_candles(odd_lake[0], "BTC", "1m", value)  # type: ignore[arg-type]


def test_end_must_follow_start(odd_lake: OddLake) -> None:
    with pytest.raises(UserError, match=r"end: .* is not after start"):
        scan_candles(odd_lake[0], "BTC", "1m", JUNE_2, JUNE_1)


# -- features ----------------------------------------------------------------------------

def test_features_columns_and_values(odd_lake: OddLake) -> None:
    root, bars, funding = odd_lake
    btc = bars_of(bars, "BTC", "1m")
    frame = features(root, "BTC", "1m")
    assert frame.schema == loaders.FEATURE_SCHEMA
    assert frame.height == len(btc.t) - 1  # the last bar is open
    assert frame["c"].to_list() == btc.c[:-1]
    returns = frame["log_return"].to_list()
    assert returns[0] is None
    assert returns[1:] == pytest.approx(list(np.log(np.array(btc.c[1:-1])
                                                    / np.array(btc.c[:-2]))))
    for row in frame.iter_rows(named=True):
        t = round(row["t"].timestamp() * 1000)
        index = funding[0].hours.index(t // HOUR_MS * HOUR_MS)
        assert row["funding_rate"] == funding[0].rate[index]
        assert row["funding_apr"] == pytest.approx(funding[0].rate[index] * 24 * 365)
        premium = funding[0].premium[index]
        assert (math.isnan(row["premium"]) if math.isnan(premium)
                else row["premium"] == premium)


def test_features_can_keep_open_bars(odd_lake: OddLake) -> None:
    frame = features(odd_lake[0], "BTC", "1m", closed_only=False)
    assert frame.height == 180 and frame["t"].is_sorted()


def test_features_without_funding_are_null(odd_lake: OddLake) -> None:
    frame = features(odd_lake[0], "@107", "1d")
    assert frame.height == 3
    assert frame["funding_rate"].null_count() == 3 and frame["premium"].null_count() == 3


def test_features_agree_with_the_sql_view(odd_lake: OddLake) -> None:
    root = odd_lake[0]
    frame = features(root, "kPEPE", "1m")
    view = catalog.connect(root).sql(
        "SELECT t, funding_rate, funding_apr FROM candles_with_funding "
        "WHERE market = 'kPEPE' AND interval = '1m' ORDER BY t").pl()
    assert frame["funding_rate"].to_list() == view["funding_rate"].to_list()
    assert frame["funding_apr"].to_list() == view["funding_apr"].to_list()


def test_features_look_back_past_empty_days(tmp_path: Path) -> None:
    """Funding only on day 0; bars on day 5 still get day 0's last hour, and only the
    partitions needed are read."""
    write_funding(tmp_path, hourly_funding("BTC", T0, 24))
    write_funding(tmp_path, Funding("BTC", [T0 + 6 * DAY_MS], [0.5], [0.0]))
    write_bars(tmp_path, make_bars("BTC", "1h", [T0 + 5 * DAY_MS + i * HOUR_MS
                                                 for i in range(3)]))
    last = hourly_funding("BTC", T0, 24).rate[-1]
    frame = features(tmp_path, "BTC", "1h", T0 + 5 * DAY_MS, T0 + 6 * DAY_MS)
    assert frame["funding_rate"].to_list() == [last] * 3
    plan = loaders.funding_as_of(tmp_path, "BTC", loaders.TimeRange(
        T0 + 5 * DAY_MS, T0 + 6 * DAY_MS)).explain()
    assert polars_sources(plan) == 1


def test_a_later_hour_is_never_attached(tmp_path: Path) -> None:
    """A bar opening a millisecond before an hour gets the previous hour's funding."""
    write_bars(tmp_path, make_bars("BTC", "1m", [T0 + HOUR_MS, T0 + 2 * HOUR_MS - 60_000,
                                                 T0 + 2 * HOUR_MS]))
    write_funding(tmp_path, Funding("BTC", [T0 + HOUR_MS, T0 + 2 * HOUR_MS + 5],
                                    [0.001, 0.002], [0.0, 0.0]))
    assert features(tmp_path, "BTC", "1m")["funding_rate"].to_list() == [0.001, 0.001, 0.002]


def test_two_events_in_one_hour_the_earlier_stands(tmp_path: Path) -> None:
    write_bars(tmp_path, make_bars("BTC", "1m", [T0 + HOUR_MS, T0 + HOUR_MS + 50 * MINUTE_MS]))
    write_funding(tmp_path, Funding("BTC", [T0 + HOUR_MS + 30 * MINUTE_MS, T0 + HOUR_MS + 65],
                                    [0.002, 0.001], [0.2, 0.1]))
    frame = features(tmp_path, "BTC", "1m")
    assert frame["funding_rate"].to_list() == [0.001, 0.001]
    assert frame["premium"].to_list() == [0.1, 0.1]


def test_public_api_is_reexported() -> None:
    assert hyperlake.connect is catalog.connect
    assert hyperlake.features is features
    assert hyperlake.scan_candles is scan_candles
    assert hyperlake.load_candles is load_candles
    assert hyperlake.scan_funding is scan_funding


def reference(t: int, funding: Funding) -> tuple[int, float] | None:
    """Brute force: the latest funding hour at or before t; the earliest time within it."""
    rows = [(h, time, r) for h, time, r in zip(funding.hours, funding.time, funding.rate,
                                               strict=True) if h <= t]
    if not rows:
        return None
    hour = max(h for h, _, _ in rows)
    return hour, min((time, r) for h, time, r in rows if h == hour)[1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(minutes=st.lists(st.integers(0, 3 * 24 * 60 - 1), min_size=1, max_size=40,
                        unique=True),
       times=st.lists(st.integers(0, 3 * DAY_MS - 1), max_size=40, unique=True),
       window=st.none() | st.tuples(st.integers(0, 3 * 24 * 60),
                                    st.integers(1, 3 * 24 * 60)),
       data=st.data())
def test_features_never_look_ahead(minutes: list[int], times: list[int],
                                   window: tuple[int, int] | None,
                                   data: st.DataObject) -> None:
    rates = data.draw(st.lists(st.floats(-0.01, 0.01, allow_nan=False),
                               min_size=len(times), max_size=len(times)))
    funding = Funding("BTC", [T0 + t for t in times], rates, [0.0] * len(times))
    opens = sorted(T0 + m * MINUTE_MS for m in minutes)
    start = T0 + (window[0] if window else 0) * MINUTE_MS
    end = start + (window[1] * MINUTE_MS if window else 3 * DAY_MS)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_bars(root, make_bars("BTC", "1m", opens))
        write_funding(root, Funding("ETH", [T0], [9.0], [9.0]))
        if times:
            write_funding(root, funding)
        frame = features(root, "btc", "1m", *((start, end) if window else (None, None)))
    assert [round(t.timestamp() * 1000) for t in frame["t"]] == [
        t for t in opens if start <= t < end]
    for row in frame.iter_rows(named=True):
        want = reference(round(row["t"].timestamp() * 1000), funding)
        assert row["funding_rate"] == (None if want is None else want[1])


ENVIRONMENT_CHURN = """
import os, sys, time
from hyperlake.query.loaders import load_candles
frame = load_candles(sys.argv[1], "BTC", "1h", "2025-01-01T00:00:00Z", "2025-01-03T00:00:00Z")
print(frame.height, flush=True)
deadline = time.monotonic() + 3
while time.monotonic() < deadline:
    for i in range(200):
        os.environ[f"CHURN_{i}"] = "x" * 64
    for i in range(200):
        del os.environ[f"CHURN_{i}"]
print("alive", flush=True)
"""


def test_an_object_store_read_leaves_no_thread_that_a_change_of_environment_crashes(
        s3_server: object, tmp_path_factory: pytest.TempPathFactory) -> None:
    """polars' own cloud reader leaves a thread behind that reads the environment:
    after one scan of an ``s3://`` URL, ``os.environ`` updates crashed the process
    within ~1 s (glibc's getenv against setenv). The loaders read through the lake's
    client instead (``Store.arrow_files``); this process lives through 3 s of updates."""
    import subprocess
    import sys

    from tests.s3_support import S3Server

    assert isinstance(s3_server, S3Server)
    root = s3_server.lake("environment-churn")
    write_bars(root, make_bars("BTC", "1h", [T0 + i * HOUR_MS for i in range(72)]))
    done = subprocess.run([sys.executable, "-c", ENVIRONMENT_CHURN, str(root)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.split() == ["48", "alive"]
