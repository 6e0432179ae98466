"""The series behind ``hyperlake plot`` against hand-computed values, and every chart
drawn from a small emulator-built lake (``test_plots_support``)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import hyperlake
from hyperlake.emulator.server import Emulator
from hyperlake.errors import UserError
from hyperlake.query.loaders import TimeRange, scan_funding
from hyperlake.query.plot_jobs import (
    CandleChart,
    FundingChart,
    HeatmapChart,
    NoData,
    Target,
    file_stem,
)
from hyperlake.query.plot_series import (
    APR_PERCENT_PER_RATE,
    candle_series,
    coarsen_bars,
    funding_series,
    heatmap_series,
    parse_window,
)
from hyperlake.query.plots import (
    CANDLES_SIZE,
    CANDLES_WITH_FUNDING_SIZE,
    FUNDING_SIZE,
    MAX_CANDLESTICKS,
    candles_figure,
    chart_style,
    funding_figure,
    heatmap_size,
    pixel_size,
)
from hyperlake.schemas.intervals import HOUR_MS, MINUTE_MS
from hyperlake.schemas.times import parse_instant
from tests.conftest import on_disk
from tests.query.test_catalog_support import (
    T0,
    hourly_funding,
    make_bars,
    write_bars,
    write_funding,
)
from tests.query.test_plots_support import FIRST_DAY, assert_drawn, emulator_lake

TS = pl.Datetime("ms", "UTC")
JITTER = 37  # funding times land milliseconds after the hour


def at(text: str) -> int:
    return parse_instant(text, "test")


def funding_rows(rows: Sequence[tuple[int, float, float]], market: str = "BTC") -> pl.DataFrame:
    """(time ms, fundingRate, premium) → the ``funding`` view's columns."""
    times = [t for t, _, _ in rows]
    return pl.DataFrame({
        "market": [market] * len(rows),
        "time": pl.Series(times, dtype=pl.Int64).cast(TS),
        "funding_hour": pl.Series([t // HOUR_MS * HOUR_MS for t in times],
                                  dtype=pl.Int64).cast(TS),
        "fundingRate": [r for _, r, _ in rows],
        "premium": [p for _, _, p in rows],
    })


def bar_rows(opens: Sequence[int], closes: Sequence[float] | None = None) -> pl.DataFrame:
    closes = list(closes) if closes is not None else [100.0 + i for i in range(len(opens))]
    return pl.DataFrame({
        "t": pl.Series(list(opens), dtype=pl.Int64).cast(TS),
        "o": [c - 0.5 for c in closes], "h": [c + 1.0 for c in closes],
        "l": [c - 1.0 for c in closes], "c": closes, "v": [1.0] * len(opens),
    })


def epoch(column: pl.Series) -> list[int | None]:
    return column.dt.epoch("ms").to_list()


# --- funding series -------------------------------------------------------------------------


def test_apr_is_rate_times_hours_per_year_in_percent() -> None:
    h = at("2026-03-30T00:00:00Z")
    series = funding_series(funding_rows([(h + JITTER, 0.0000125, 0.0),
                                          (h + HOUR_MS + JITTER, -0.0001, 0.0),
                                          (h + 2 * HOUR_MS + JITTER, 0.0005, 0.0)]))
    assert APR_PERCENT_PER_RATE == 876_000
    assert series["apr"].to_list() == pytest.approx([10.95, -87.6, 438.0])
    assert series["rate"].to_list() == [0.0000125, -0.0001, 0.0005]


def test_moving_average_over_gaps_uses_only_the_hours_present() -> None:
    # hours 0, 1, 2, 4, 5 (hour 3 missing); a 3h window is (h - 3h, h]
    h = at("2026-03-30T00:00:00Z")
    hours = [0, 1, 2, 4, 5]
    rates = [1e-5, 2e-5, 3e-5, 5e-5, 6e-5]
    premiums = [0.001, math.nan, 0.003, 0.005, 0.006]
    series = funding_series(funding_rows([(h + k * HOUR_MS + JITTER, r, p) for k, r, p
                                          in zip(hours, rates, premiums, strict=True)]), "3h")
    assert series["rate_ma"].to_list() == pytest.approx(
        [1e-5, 1.5e-5, 2e-5, (3e-5 + 5e-5) / 2, (5e-5 + 6e-5) / 2])
    assert series["apr_ma"].to_list() == pytest.approx(
        [r * 876_000 for r in [1e-5, 1.5e-5, 2e-5, 4e-5, 5.5e-5]])
    # the NaN premium is missing, not a poison: hour 1 averages hour 0 alone
    assert series["premium"].null_count() == 1
    assert series["premium_ma"].to_list() == pytest.approx(
        [0.001, 0.001, 0.002, 0.004, 0.0055])
    assert series["gap_before"].to_list() == [False, False, False, True, False]


def test_moving_average_is_trailing_never_looking_ahead() -> None:
    h = at("2026-03-30T00:00:00Z")
    rows = [(h + k * HOUR_MS + JITTER, 1e-5, 0.0) for k in range(5)]
    rows.append((h + 5 * HOUR_MS + JITTER, 1e-3, 0.0))  # a jump at the last hour
    series = funding_series(funding_rows(rows), "24h")
    assert series["rate_ma"].to_list()[:5] == pytest.approx([1e-5] * 5)
    assert series["rate_ma"][5] == pytest.approx((5 * 1e-5 + 1e-3) / 6)


def test_one_row_per_hour_the_earliest_time_stands_for_it() -> None:
    h = at("2023-07-02T08:00:00Z")
    series = funding_series(funding_rows([(h + 23 * MINUTE_MS, 2e-5, 0.0),
                                          (h + JITTER, 1e-5, 0.0),
                                          (h + HOUR_MS + JITTER, 3e-5, 0.0)]), None)
    assert epoch(series["hour"]) == [h, h + HOUR_MS]
    assert series["rate"].to_list() == [1e-5, 3e-5]
    assert series["rate_ma"].null_count() == 2  # no window, no average


def test_gaps_follow_the_cadence_in_force_eight_hours_before_2023_06_08() -> None:
    h = at("2023-06-07T00:00:00Z")
    hours = [h, h + 8 * HOUR_MS, h + 24 * HOUR_MS,  # 16h after: one 8h payment missing
             h + 25 * HOUR_MS, h + 27 * HOUR_MS]  # the hourly era: 2h after is a gap
    series = funding_series(funding_rows([(t + JITTER, 1e-4, 0.0) for t in hours]))
    assert at("2023-06-08T00:00:00Z") == h + 24 * HOUR_MS
    assert series["gap_before"].to_list() == [False, False, True, False, True]


@pytest.mark.parametrize("text", ["24x", "0h", "h", "1.5h", "-2h", "24 hours"])
def test_a_window_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(UserError, match="not a window"):
        parse_window(text, "--ma")


def test_windows_and_no_window() -> None:
    assert [parse_window(t) for t in ("24h", "7d", "90m", "2w")] == ["24h", "7d", "90m", "2w"]
    assert [parse_window(t) for t in (None, "none", "0", "")] == [None] * 4


# --- heatmap series -------------------------------------------------------------------------


def test_heatmap_daily_mean_apr_ordered_by_mean_apr() -> None:
    d1, d2, d3 = at("2026-03-28T00:00:00Z"), at("2026-03-29T00:00:00Z"), at("2026-03-30T00:00:00Z")
    btc = funding_rows([(d1 + JITTER, 1e-5, 0.0), (d1 + HOUR_MS + JITTER, 3e-5, 0.0),
                        (d1 + HOUR_MS + 40 * MINUTE_MS, 9e-5, 0.0),  # later in hour 1: dropped
                        (d3 + JITTER, -2e-5, 0.0)], "BTC")
    eth = funding_rows([(d1 + JITTER, 4e-5, 0.0), (d2 + JITTER, 6e-5, 0.0)], "ETH")
    series = heatmap_series(pl.concat([btc, eth]))
    rows = [(r["market"], r["day"].isoformat(), r["apr"], r["hours"], r["mean_apr"])
            for r in series.iter_rows(named=True)]
    assert rows == [
        ("ETH", "2026-03-28", pytest.approx(35.04), 1, pytest.approx(43.8)),
        ("ETH", "2026-03-29", pytest.approx(52.56), 1, pytest.approx(43.8)),
        ("BTC", "2026-03-28", pytest.approx(17.52), 2, pytest.approx(5.84)),
        ("BTC", "2026-03-30", pytest.approx(-17.52), 1, pytest.approx(5.84)),
    ]


# --- candle series --------------------------------------------------------------------------


def test_candle_gaps_and_calendar_months() -> None:
    h = at("2026-03-30T00:00:00Z")
    series = candle_series(bar_rows([h, h + HOUR_MS, h + 4 * HOUR_MS, h + 5 * HOUR_MS]), "1h")
    assert series["gap_before"].to_list() == [False, False, True, False]
    assert epoch(series["t_next"])[1] == h + 2 * HOUR_MS
    months = [at("2026-01-01T00:00:00Z"), at("2026-02-01T00:00:00Z"), at("2026-04-01T00:00:00Z")]
    monthly = candle_series(bar_rows(months), "1M")
    assert epoch(monthly["t_next"]) == [months[1], at("2026-03-01T00:00:00Z"),
                                        at("2026-05-01T00:00:00Z")]
    assert monthly["gap_before"].to_list() == [False, False, True]


def test_funding_is_aligned_to_bars_without_lookahead() -> None:
    h10 = at("2026-03-30T10:00:00Z")
    funding = funding_rows([
        (h10 + JITTER, 1e-5, 0.0),
        (h10 + HOUR_MS + JITTER, 2e-5, 0.0),
        (h10 + HOUR_MS + 40 * MINUTE_MS, 9e-5, 0.0),  # published late in hour 11
        # hour 12 missing
        (h10 + 3 * HOUR_MS + JITTER, 4e-5, 0.0),
    ])
    opens = [h10 - 30 * MINUTE_MS + k * 30 * MINUTE_MS for k in range(9)]  # 09:30 .. 13:30
    series = candle_series(bar_rows(opens), "30m", funding)
    assert series["rate"].to_list() == [None, 1e-5, 1e-5, 2e-5, 2e-5, None, None, 4e-5, 4e-5]
    assert series["apr"].to_list() == [
        None if r is None else pytest.approx(r * 876_000) for r in series["rate"].to_list()]
    pairs = [(hour, t) for hour, t in zip(epoch(series["funding_hour"]), epoch(series["t"]),
                                          strict=True) if hour is not None and t is not None]
    assert all(hour <= t for hour, t in pairs)  # never a funding hour after the bar's open
    assert [hour for hour, _ in pairs] == [h10, h10, h10 + HOUR_MS, h10 + HOUR_MS,
                                           h10 + 3 * HOUR_MS, h10 + 3 * HOUR_MS]


def test_an_eight_hour_payment_stays_in_force_for_eight_hours() -> None:
    h = at("2023-05-01T00:00:00Z")
    funding = funding_rows([(h + JITTER, 8e-4, 0.0)])
    series = candle_series(bar_rows([h + k * HOUR_MS for k in (0, 7, 8)]), "1h", funding)
    assert series["rate"].to_list() == [8e-4, 8e-4, None]


def test_coarsened_bars_keep_open_high_low_close_and_sum_volume() -> None:
    m = at("2026-03-30T00:00:00Z")
    bars = pl.DataFrame({
        "t": pl.Series([m + k * MINUTE_MS for k in (0, 1, 2, 3, 4, 9)], dtype=pl.Int64).cast(TS),
        "o": [10.0, 11.0, 12.0, 13.0, 14.0, 19.0], "h": [15.0, 16.0, 13.0, 14.0, 20.0, 21.0],
        "l": [9.0, 8.0, 11.0, 12.0, 13.0, 18.0], "c": [11.0, 12.0, 12.5, 14.0, 19.0, 20.0],
        "v": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    })
    merged = coarsen_bars(bars, "1m", 3).collect()
    assert epoch(merged["t"]) == [m, m + 3 * MINUTE_MS, m + 9 * MINUTE_MS]
    assert merged.select("o", "h", "l", "c", "v").rows() == [
        (10.0, 16.0, 8.0, 12.5, 6.0), (13.0, 20.0, 12.0, 19.0, 9.0),
        (19.0, 21.0, 18.0, 20.0, 6.0)]
    series = candle_series(bars, "1m", bins=3)
    assert series["gap_before"].to_list() == [False, False, True]  # the bin at :06 is empty
    assert epoch(series["t_next"])[0] == m + 3 * MINUTE_MS


def test_the_series_are_exported_for_notebooks() -> None:
    assert hyperlake.funding_series is funding_series
    assert hyperlake.heatmap_series is heatmap_series
    assert hyperlake.candle_series is candle_series


# --- drawing --------------------------------------------------------------------------------


def test_lines_break_at_gaps_and_the_apr_axis_is_locked_to_the_rate_axis() -> None:
    h = at("2026-03-30T00:00:00Z")
    series = funding_series(funding_rows([(h + k * HOUR_MS + JITTER, 1e-5 * (k + 1), 1e-4)
                                          for k in (0, 1, 2, 5, 6)]))
    with chart_style():
        figure = funding_figure(series, "t", "24h")
    top = figure.axes[0]
    rate = np.asarray(top.lines[1].get_ydata(), dtype=float)  # lines[0]: the zero line
    assert len(rate) == 6 and math.isnan(rate[3])  # a break before hour 5
    assert rate[[0, 1, 2, 4, 5]].tolist() == pytest.approx([1e-5, 2e-5, 3e-5, 6e-5, 7e-5])
    [apr_axis] = [child for child in top.child_axes]
    figure.draw_without_rendering()  # a secondary axis takes its limits when drawn
    low, high = top.get_ylim()
    assert apr_axis.get_ylim() == pytest.approx((low * 876_000, high * 876_000))


def test_many_bars_become_a_close_line_broken_at_missing_buckets() -> None:
    h = at("2026-03-30T00:00:00Z")
    opens = [h + k * MINUTE_MS for k in range(MAX_CANDLESTICKS + 20) if k != 100]
    with chart_style():
        line = candles_figure(candle_series(bar_rows(opens), "1m"), "t", with_funding=False)
        sticks = candles_figure(candle_series(bar_rows(opens[:50]), "1m"), "t",
                                with_funding=False)
    close = np.asarray(line.axes[0].lines[0].get_ydata(), dtype=float)
    assert len(close) == len(opens) + 1 and math.isnan(close[100])
    assert len(sticks.axes[0].patches) == 50  # one body per bar
    assert len(sticks.axes[1].patches) == 50  # one volume bar per bar


# --- charts from a lake ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def lake(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return on_disk(emulator_lake(emulator, tmp_path_factory.mktemp("lake"),
                                 tmp_path_factory.mktemp("pacing")))


def test_funding_chart_from_the_emulator_lake(lake: Path, tmp_path: Path) -> None:
    done = FundingChart(lake, "btc", target=Target(tmp_path)).render()
    assert done.path == tmp_path / "funding-BTC.png" and done.detail == "72 funding hours"
    assert_drawn(done.path, pixel_size(FUNDING_SIZE))
    assert [p.name for p in tmp_path.iterdir()] == ["funding-BTC.png"]  # no temporary left


def test_candle_charts_from_the_emulator_lake(lake: Path, tmp_path: Path) -> None:
    plain = CandleChart(lake, "ETH", "1h", target=Target(tmp_path)).render()
    assert_drawn(plain.path, pixel_size(CANDLES_SIZE))
    funded = CandleChart(lake, "BTC", "1h", target=Target(tmp_path / "f"),
                         with_funding=True).render()
    assert funded.detail == "72 bars of 1h"
    assert_drawn(funded.path, pixel_size(CANDLES_WITH_FUNDING_SIZE))


def test_candles_with_funding_match_the_catalog_join(lake: Path) -> None:
    _, _, series = CandleChart(lake, "BTC", "1h", with_funding=True).series()
    con = hyperlake.connect(lake)
    expected = con.execute("SELECT funding_apr * 100 FROM candles_with_funding WHERE market = "
                           "'BTC' AND interval = '1h' ORDER BY t").fetchall()
    assert series["apr"].to_list() == pytest.approx([row[0] for row in expected])


def test_heatmap_from_the_emulator_lake(lake: Path, tmp_path: Path) -> None:
    done = HeatmapChart(lake, target=Target(tmp_path)).render()
    assert done.path == tmp_path / "funding-heatmap.png"
    assert_drawn(done.path, pixel_size(heatmap_size(3)))
    series = HeatmapChart(lake).series()
    means = series.unique("market", keep="first", maintain_order=True)["mean_apr"].to_list()
    assert means == sorted(means, reverse=True)
    assert series.filter(pl.col("market") == "kPEPE").height == 1  # one day of funding


def test_svg_output(lake: Path, tmp_path: Path) -> None:
    done = FundingChart(lake, "ETH", target=Target(tmp_path, "svg")).render()
    text = done.path.read_text()
    assert done.path.name == "funding-ETH.svg"
    assert text.startswith("<?xml") and 'width="864pt" height="504pt"' in text
    assert "ETH funding" in text  # text stays text


def test_a_span_without_data_is_an_error_and_writes_nothing(lake: Path, tmp_path: Path) -> None:
    span = TimeRange.parse(*FIRST_DAY)
    with pytest.raises(NoData, match=r"kPEPE: no funding in \[2026-03-28T00:00:00Z, "
                       r"2026-03-29T00:00:00Z\) \(its partitions run 2026-03-30 to "):
        FundingChart(lake, "kPEPE", span, Target(tmp_path)).render()
    with pytest.raises(NoData, match="no 1h candles"):
        CandleChart(lake, "BTC", "1h", TimeRange.parse("2025-01-01T00:00:00Z",
                                                      "2025-02-01T00:00:00Z"),
                    Target(tmp_path)).render()
    assert list(tmp_path.iterdir()) == []


def test_file_names_are_safe_and_never_meet_on_a_case_insensitive_disk() -> None:
    assert file_stem("funding", "xyz:XYZ100") == "funding-xyz%3AXYZ100"
    assert file_stem("candles", "@107", "1M") == "candles-%40107-1mo"
    assert file_stem("candles", "BTC", "1m") == "candles-BTC-1m"


# --- partition pruning ----------------------------------------------------------------------


def test_a_chart_opens_only_its_own_market_and_dates(tmp_path: Path) -> None:
    """Every partition a chart must not read is garbage: reading one would fail."""
    lake = tmp_path / "lake"
    days = 10
    for seed, market in enumerate(("BTC", "ETH")):
        write_funding(lake, hourly_funding(market, T0, days * 24, seed=seed))
        write_bars(lake, make_bars(market, "1h", [T0 + k * HOUR_MS for k in range(days * 24)],
                                   seed=seed))
    start, end = "2025-01-05T00:00:00Z", "2025-01-07T00:00:00Z"
    keep = {("BTC", "2025-01-04"), ("BTC", "2025-01-05"), ("BTC", "2025-01-06")}
    for part in lake.glob("*/market=*/interval=*/date=*/part-0.parquet"):
        market = part.parents[2].name.removeprefix("market=")
        if (market, part.parent.name.removeprefix("date=")) not in keep:
            part.write_bytes(b"not parquet")
    span = TimeRange.parse(start, end)
    done = FundingChart(lake, "BTC", span, Target(tmp_path / "out")).render()
    assert done.detail == "48 funding hours"
    _, series = FundingChart(lake, "BTC", span).series()
    # the day before the span was read too, to warm the 24h average up: the average at
    # the first hour of the span is over the 24 hours (start - 24h, start]
    before = scan_funding(lake, "BTC", at(start) - 24 * HOUR_MS, end).collect()
    assert series["rate_ma"][0] == pytest.approx(before["fundingRate"][1:25].mean())
    bars = CandleChart(lake, "BTC", "1h", span, Target(tmp_path / "out"),
                       with_funding=True).render()
    assert bars.detail == "48 bars of 1h"
    heat = HeatmapChart(lake, ("btc",), span, Target(tmp_path / "out")).render()
    assert heat.detail == "1 market, 2 days"


def test_times_are_utc_on_the_axis() -> None:
    """matplotlib reads the naive datetime64 the charts draw as UTC under chart_style."""
    h = at("2026-03-30T23:00:00Z")
    series = funding_series(funding_rows([(h + JITTER, 1e-5, 0.0)]))
    with chart_style():
        figure = funding_figure(series, "t", None)
    x = figure.axes[0].lines[1].get_xdata()
    assert np.asarray(x)[0] == np.datetime64(dt.datetime(2026, 3, 30, 23), "ms")
