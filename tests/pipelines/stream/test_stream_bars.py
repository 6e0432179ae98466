"""The bar aggregator: exchange-time buckets, wall-clock deadlines, late and too-late
trades, no bar for an empty bucket, bounded memory, and bars equal to the exchange's
(the emulator's market model, REST-formatted) to the last digit."""

from __future__ import annotations

import pytest

from hyperlake.emulator.info_api import native_candle
from hyperlake.emulator.market import Market
from hyperlake.emulator.ws import trades_frames
from hyperlake.pipelines.stream.bars import DEFAULT_RETENTION_MS, Bar, BarAggregator
from hyperlake.pipelines.stream.dedupe import TradeDeduper
from hyperlake.pipelines.stream.trades import Trade, TradeBatch, parse_frame
from hyperlake.schemas.candles import CANDLE_SCHEMA, CandleRow, candle_table, parse_candle
from hyperlake.schemas.intervals import HOUR_MS, MINUTE_MS, WEEK_MS, bucket_start, next_bucket

START = 1_790_232_000_000  # 2026-09-24T06:40:00Z, a whole minute
GRACE = 2_000


def batch(coin: str, *trades: tuple[int, int, float, float]) -> TradeBatch:
    """A batch of (time offset ms, tid, px, sz) trades."""
    return TradeBatch.of([Trade(coin, "B", px, sz, START + t, "0x0", tid)
                          for t, tid, px, sz in trades])


def aggregator(*intervals: str, start: int = START, **kwargs: int) -> BarAggregator:
    return BarAggregator(intervals or ("1s",), grace_ms=GRACE, start_ms=start, **kwargs)


def ohlcvn(row: CandleRow) -> tuple[float, float, float, float, float, int]:
    return row.o, row.h, row.l, row.c, row.v, row.n


def test_a_bar_is_every_trade_of_its_bucket() -> None:
    bars = aggregator("1m")
    bars.add(batch("BTC", (1_000, 1, 100.0, 0.5), (2_000, 2, 103.0, 0.25),
                   (3_000, 3, 99.0, 1.0), (59_999, 4, 101.0, 0.125)))
    [bar] = bars.close_due(START + MINUTE_MS + GRACE)
    assert (bar.coin, bar.interval, bar.revision) == ("BTC", "1m", 0)
    row = bar.row
    assert (row.t, row.t_close, row.x, row.q) == (START, START + MINUTE_MS - 1, True, None)
    assert ohlcvn(row) == (100.0, 103.0, 99.0, 101.0, 1.875, 4)
    assert row.fetched_at == START + MINUTE_MS + GRACE


def test_a_bar_closes_at_its_deadline_not_when_the_next_trade_comes() -> None:
    bars = aggregator("1s")
    bars.add(batch("BTC", (500, 1, 10.0, 1.0)))
    assert bars.next_deadline() == START + 1_000 + GRACE
    assert bars.close_due(START + 1_000 + GRACE - 1) == []
    bars.add(batch("BTC", (1_500, 2, 11.0, 1.0)))  # the next bucket's trade closes nothing
    assert bars.close_due(START + 1_000 + GRACE - 1) == []
    [bar] = bars.close_due(START + 1_000 + GRACE)
    assert bar.row.t == START and bar.row.n == 1


def test_the_deadline_comes_with_no_trade_at_all() -> None:
    bars = aggregator("1m")
    bars.add(batch("BTC", (0, 1, 10.0, 1.0)))
    assert [b.row.t for b in bars.close_due(START + 10 * MINUTE_MS)] == [START]


def test_a_bucket_without_trades_has_no_bar() -> None:
    bars = aggregator("1s")
    bars.add(batch("BTC", (100, 1, 10.0, 1.0)))
    bars.add(batch("BTC", (3_100, 2, 12.0, 1.0)))
    closed = bars.close_due(START + 10_000)
    assert [b.row.t for b in closed] == [START, START + 3_000]
    assert all(b.row.n > 0 for b in closed)


def test_buckets_follow_exchange_time_whatever_the_arrival() -> None:
    bars = aggregator("1s")
    bars.add(batch("BTC", (1_200, 2, 11.0, 1.0), (999, 1, 10.0, 1.0)))  # out of order
    closed = {b.row.t: b.row for b in bars.close_due(START + 5_000)}
    assert closed[START].n == 1 and closed[START].o == 10.0
    assert closed[START + 1_000].n == 1 and closed[START + 1_000].o == 11.0


def test_a_trade_on_the_boundary_opens_the_next_bucket() -> None:
    bars = aggregator("1m")
    bars.add(batch("BTC", (MINUTE_MS - 1, 1, 10.0, 1.0), (MINUTE_MS, 2, 20.0, 1.0)))
    closed = bars.close_due(START + 3 * MINUTE_MS)
    assert [(b.row.t, b.row.c) for b in closed] == [(START, 10.0), (START + MINUTE_MS, 20.0)]


def test_ties_in_time_open_with_the_lowest_tid_and_close_with_the_highest() -> None:
    for order in ([(5, 7, 3.0, 1.0), (5, 3, 1.0, 1.0), (5, 9, 2.0, 1.0)],
                  [(5, 9, 2.0, 1.0), (5, 7, 3.0, 1.0), (5, 3, 1.0, 1.0)]):
        bars = aggregator("1s")
        for trade in order:
            bars.add(batch("BTC", trade))
        [bar] = bars.close_due(START + 5_000)
        assert (bar.row.o, bar.row.c) == (1.0, 2.0)
    bars = aggregator("1s")
    bars.add(batch("BTC", (1, 5, 4.0, 1.0), (5, 9, 2.0, 1.0), (5, 3, 1.0, 1.0),
                   (5, 7, 3.0, 1.0)))
    [bar] = bars.close_due(START + 5_000)
    assert (bar.row.o, bar.row.c) == (4.0, 2.0)


def test_one_trade_stream_feeds_every_interval() -> None:
    bars = aggregator("1s", "1m", "3m", "5m", "1h")
    bars.add(batch("BTC", (59_500, 1, 10.0, 1.0), (60_500, 2, 12.0, 2.0)))
    closed = bars.close_due(START + HOUR_MS + GRACE)
    by_interval: dict[str, list[tuple[int, int]]] = {}
    for bar in closed:
        by_interval.setdefault(bar.interval, []).append((bar.row.t, bar.row.n))
    assert by_interval == {
        "1s": [(START + 59_000, 1), (START + 60_000, 1)],
        "1m": [(START, 1), (START + 60_000, 1)],
        "3m": [(bucket_start(START, "3m"), 2)],  # 06:39-06:42
        "5m": [(START, 2)],
        "1h": [(bucket_start(START, "1h"), 2)],
    }


def test_weeks_open_on_mondays_and_months_on_the_first() -> None:
    bars = aggregator("1w", "1M")
    bars.add(batch("BTC", (0, 1, 10.0, 1.0)))
    [month, week] = sorted(bars.open_bars(START), key=lambda b: b.interval)
    assert week.row.t == bucket_start(START, "1w") and week.row.t_close == week.row.t + WEEK_MS - 1
    assert month.row.t == bucket_start(START, "1M")
    assert month.row.t_close == next_bucket(month.row.t, "1M") - 1


def test_a_frame_across_buckets_lands_in_each() -> None:
    bars = aggregator("1s", "1M")
    trades = [(ms, ms + 1, 1.0 + ms / 1000, 1.0) for ms in range(0, 10_000, 250)]
    bars.add(batch("BTC", *trades))
    closed = bars.close_due(START + 20_000)
    assert [b.row.n for b in closed] == [4] * 10
    [month] = bars.open_bars(START + 20_000)
    assert month.row.n == 40 and month.row.h == trades[-1][2]


def test_a_late_trade_reemits_the_bar_corrected() -> None:
    bars = aggregator("1s")
    bars.add(batch("BTC", (100, 1, 10.0, 1.0)))
    [first] = bars.close_due(START + 5_000)
    bars.add(batch("BTC", (900, 2, 12.0, 0.5)))  # a trade of the closed bucket, late
    assert bars.late_trades == {"1s": 1}
    [second] = bars.close_due(START + 5_100)
    assert second.revision == first.revision + 1 == 1
    assert (second.row.t, second.row.n, second.row.c, second.row.h, second.row.v) == (
        START, 2, 12.0, 12.0, 1.5)
    assert second.row.fetched_at > first.row.fetched_at


def test_corrections_stay_later_even_when_the_clock_steps_back() -> None:
    bars = aggregator("1s")
    bars.add(batch("BTC", (100, 1, 10.0, 1.0)))
    [first] = bars.close_due(START + 5_000)
    bars.add(batch("BTC", (200, 2, 10.0, 1.0)))
    [second] = bars.close_due(START + 4_000)
    assert second.row.fetched_at == first.row.fetched_at + 1


def test_a_late_trade_for_an_empty_closed_bucket_is_its_first_bar() -> None:
    bars = aggregator("1s")
    bars.add(batch("BTC", (5_100, 1, 10.0, 1.0)))
    bars.close_due(START + 10_000)
    bars.add(batch("BTC", (2_100, 2, 11.0, 1.0)))
    [bar] = bars.close_due(START + 10_001)
    assert (bar.row.t, bar.revision, bar.row.n) == (START + 2_000, 0, 1)


def test_a_trade_past_the_retention_is_too_late_and_changes_nothing() -> None:
    retention = 60_000
    bars = aggregator("1s", "1h", retention_ms=retention)
    bars.add(batch("BTC", (100, 1, 10.0, 1.0)))
    bars.close_due(START + 1_000 + GRACE)
    bars.close_due(START + 1_000 + GRACE + retention)  # the 1s bucket is dropped
    bars.add(batch("BTC", (200, 2, 11.0, 1.0)))
    assert bars.too_late_trades == {"1s": 1, "1h": 0}
    assert bars.late_trades == {"1s": 0, "1h": 0}
    assert bars.close_due(START + 1_000 + GRACE + retention + 1) == []
    [hour] = bars.open_bars(START)
    assert hour.row.n == 2  # the hour is still open: the trade counts there
    # the streamer hears which bucket lacks it (to repair it), once
    assert bars.take_missed() == [("BTC", "1s", START)]
    assert bars.take_missed() == []


def test_trades_before_the_start_are_late_or_too_late() -> None:
    bars = aggregator("1s", start=START + 10_000)
    bars.add(batch("BTC", (5_000, 1, 10.0, 1.0)))  # closed at start, within retention
    bars.add(batch("BTC", (-DEFAULT_RETENTION_MS - 10_000, 2, 10.0, 1.0)))
    assert bars.late_trades == {"1s": 1} and bars.too_late_trades == {"1s": 1}
    [bar] = bars.close_due(START + 10_000)
    assert bar.row.t == START + 5_000


def test_open_bars_are_a_live_view_that_stays_open() -> None:
    bars = aggregator("1m")
    bars.add(batch("ETH", (1_000, 1, 10.0, 1.0)))
    bars.add(batch("BTC", (2_000, 2, 20.0, 1.0)))
    view = bars.open_bars(START + 30_000)
    assert [(b.coin, b.row.x, b.row.fetched_at) for b in view] == [
        ("BTC", False, START + 30_000), ("ETH", False, START + 30_000)]
    assert [b.coin for b in bars.close_due(START + MINUTE_MS + GRACE)] == ["BTC", "ETH"]
    assert bars.open_bars(START + MINUTE_MS + GRACE) == []
    assert bars.next_deadline() is None


def test_memory_is_bounded_by_the_retention_whatever_the_uptime() -> None:
    retention = 30_000
    bars = aggregator("1s", "1m", retention_ms=retention)
    peak = emitted = 0
    for second in range(4 * 3600):
        for coin in ("BTC", "ETH", "SOL"):
            bars.add(batch(coin, (second * 1000 + 10, second, 10.0, 1.0)))
        emitted += len(bars.close_due(START + second * 1000 + 500))
        peak = max(peak, bars.held_buckets())
    # per coin: (grace + retention) / 1 s closed + 1 open 1s buckets, and 2 of 1m
    assert peak <= 3 * ((GRACE + retention) // 1000 + 2 + 2)
    assert emitted >= 3 * (4 * 3600 - 5)


def test_rows_make_a_checkpoint_table() -> None:
    bars = aggregator("1m")
    bars.add(batch("BTC", (1_000, 1, 10.0, 1.0)))
    rows = [b.row for b in bars.close_due(START + 2 * MINUTE_MS)]
    table = candle_table("BTC", "1m", "stream", rows)
    assert table.schema == CANDLE_SCHEMA and table.num_rows == 1
    assert table.column("q").null_count == 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="intervals"):
        aggregator("2m")
    with pytest.raises(ValueError, match="negative"):
        BarAggregator(["1m"], grace_ms=-1, start_ms=START)


# -- against the exchange -------------------------------------------------------------

EXCHANGE_START = 1_774_915_200_000  # 2026-03-31T00:00:00Z


@pytest.mark.parametrize("coin", ["BTC", "kPEPE", "@107", "ETH"])
def test_bars_equal_the_exchange_candles_to_the_last_digit(coin: str) -> None:
    """An hour of the emulator's trades, framed as its WebSocket frames them, against
    its REST candles of every bucket (o h l c v n, t/T), parsed the way the lake does."""
    market = Market()
    inst = market.instrument(coin)
    end = EXCHANGE_START + HOUR_MS
    trades = market.trades(coin, EXCHANGE_START, end)
    intervals = ("1m", "5m", "15m", "1h")
    dedupe = TradeDeduper()
    bars = BarAggregator(intervals, grace_ms=GRACE, start_ms=EXCHANGE_START)
    emitted: list[Bar] = []
    for frame in trades_frames(coin, inst, trades):
        parsed = parse_frame(frame)
        assert isinstance(parsed, TradeBatch)
        bars.add(dedupe.admit(parsed))
        emitted += bars.close_due(parsed.latest)
    emitted += bars.close_due(end + GRACE)
    assert dedupe.duplicates == 0 and sum(bars.late_trades.values()) == 0
    ours = {(b.interval, b.row.t): b.row for b in emitted}
    expected = {}
    for interval in intervals:
        for candle in market.candles(coin, interval, EXCHANGE_START, end - 1, end, 5000):
            record = native_candle(candle, inst, interval)
            expected[(interval, candle.open_ms)] = parse_candle(record, coin, interval, 0,
                                                                closed=True)
    assert ours.keys() == expected.keys() and len(ours) > 4
    for key, row in expected.items():
        assert ours[key]._replace(fetched_at=0) == row, key
