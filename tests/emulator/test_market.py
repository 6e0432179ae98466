"""The market model: deterministic, random access, candles = aggregation of trades."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperlake.emulator.market import (
    Candle,
    Market,
    Trade,
    format_decimal,
)
from hyperlake.schemas.exchange import HOURLY_FUNDING_FROM_MS
from hyperlake.schemas.intervals import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    bucket_start,
    next_bucket,
)

NOW = 1_774_915_200_000  # 2026-03-31T00:00:00Z


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(seed=0)


def naive_candle(trades: list[Trade]) -> tuple[int, ...] | None:
    if not trades:
        return None
    ticks = [t.ticks for t in trades]
    return (ticks[0], max(ticks), min(ticks), ticks[-1], sum(t.lots for t in trades),
            sum(t.ticks * t.lots for t in trades), len(trades))


def as_tuple(c: Candle | None) -> tuple[int, ...] | None:
    if c is None:
        return None
    return (c.o, c.h, c.low, c.c, c.volume_lots, c.quote_units, c.trades)


def test_same_seed_same_trades_other_seed_other_trades() -> None:
    day = NOW // DAY_MS - 3
    a, b, c = Market(5).tape("BTC", day), Market(5).tape("BTC", day), Market(6).tape("BTC", day)
    assert len(a) > 1000
    assert np.array_equal(a.times, b.times) and np.array_equal(a.ticks, b.ticks)
    assert np.array_equal(a.lots, b.lots)
    assert len(a) != len(c) or not np.array_equal(a.ticks, c.ticks)


def test_random_access_does_not_depend_on_what_was_generated_before() -> None:
    day = NOW // DAY_MS - 40
    cold = Market(1).tape("ETH", day)
    warm_market = Market(1)
    for d in range(day - 3, day):
        warm_market.tape("ETH", d)
    assert np.array_equal(cold.ticks, warm_market.tape("ETH", day).ticks)


def test_trades_are_sorted_unique_ids_and_inside_their_day(market: Market) -> None:
    day = NOW // DAY_MS - 1
    trades = market.trades("BTC", day * DAY_MS, (day + 1) * DAY_MS)
    times = [t.time_ms for t in trades]
    assert times == sorted(times)
    assert times[0] >= day * DAY_MS and times[-1] < (day + 1) * DAY_MS
    tids = [t.tid for t in trades]
    assert len(set(tids)) == len(tids) and tids == sorted(tids)
    assert all(t.ticks > 0 and t.lots > 0 for t in trades)


def test_trade_ids_grow_across_days_and_differ_between_coins(market: Market) -> None:
    btc = market.trades("BTC", NOW - HOUR_MS, NOW + HOUR_MS)  # across midnight
    eth = market.trades("ETH", NOW - HOUR_MS, NOW + HOUR_MS)
    assert btc[0].time_ms < NOW <= btc[-1].time_ms
    assert [t.tid for t in btc] == sorted({t.tid for t in btc})
    assert not {t.tid for t in btc} & {t.tid for t in eth}
    assert max(t.tid for t in btc + eth) < 2**53  # exact in JSON and float64


@pytest.mark.parametrize("now_ms", [NOW + 1_500, NOW + 5 * MINUTE_MS + 17, NOW - 1])
def test_recent_trades_are_the_last_ones_up_to_now(market: Market, now_ms: int) -> None:
    recent = market.recent_trades("BTC", now_ms, 30)
    assert recent == market.trades("BTC", now_ms - DAY_MS, now_ms + 1)[-30:]


def test_recent_trades_of_a_thin_or_gone_coin_look_back_a_few_days(market: Market) -> None:
    matic = market.instrument("MATIC")
    assert matic.delisted_ms is not None
    assert market.recent_trades("MATIC", matic.delisted_ms + 3 * DAY_MS, 30) == []
    last = market.recent_trades("MATIC", matic.delisted_ms + HOUR_MS, 30)
    assert 0 < len(last) <= 30 and last[-1].time_ms < matic.delisted_ms
    assert last == market.trades("MATIC", matic.delisted_ms - 3 * DAY_MS, NOW)[-len(last):]


@settings(max_examples=60, deadline=None)
@given(
    interval=st.sampled_from(["1s", "1m", "3m", "5m", "15m", "1h", "4h"]),
    offset_ms=st.integers(min_value=0, max_value=5 * DAY_MS),
)
def test_every_candle_is_the_aggregation_of_its_trades(interval: str, offset_ms: int) -> None:
    market = Market(seed=0)
    open_ms = bucket_start(NOW - 6 * DAY_MS + offset_ms, interval)
    close = next_bucket(open_ms, interval)
    expected = naive_candle(market.trades("BTC", open_ms, close))
    assert as_tuple(market.candle("BTC", interval, open_ms, NOW)) == expected


def test_day_week_and_month_candles_aggregate_their_days(market: Market) -> None:
    for interval in ("1d", "1w", "1M"):
        open_ms = bucket_start(NOW - 40 * DAY_MS, interval)
        close = next_bucket(open_ms, interval)
        days = [market.candle("SOL", "1d", d, NOW) for d in range(open_ms, close, DAY_MS)]
        days_present = [d for d in days if d is not None]
        whole = market.candle("SOL", interval, open_ms, NOW)
        assert whole is not None
        assert whole.o == days_present[0].o and whole.c == days_present[-1].c
        assert whole.h == max(d.h for d in days_present)
        assert whole.low == min(d.low for d in days_present)
        assert whole.volume_lots == sum(d.volume_lots for d in days_present)
        assert whole.trades == sum(d.trades for d in days_present)


def test_weeks_open_on_monday_and_months_on_the_first() -> None:
    import datetime as dt

    week = dt.datetime.fromtimestamp(bucket_start(NOW, "1w") / 1000, tz=dt.UTC)
    month = dt.datetime.fromtimestamp(bucket_start(NOW - 1, "1M") / 1000, tz=dt.UTC)
    assert week.weekday() == 0 and (week.hour, week.minute) == (0, 0)
    assert (month.day, month.month, month.hour) == (1, 3, 0)


def test_open_candle_holds_only_trades_up_to_now(market: Market) -> None:
    now = NOW - 7 * MINUTE_MS + 31_337
    open_ms = bucket_start(now, "5m")
    candle = market.candle("BTC", "5m", open_ms, now)
    assert candle is not None and not candle.closed
    assert as_tuple(candle) == naive_candle(market.trades("BTC", open_ms, now + 1))
    assert market.candle("BTC", "5m", next_bucket(open_ms, "5m"), now) is None
    closed = market.candle("BTC", "5m", open_ms, next_bucket(open_ms, "5m"))
    assert closed is not None and closed.closed and closed.trades >= candle.trades


def test_one_second_buckets_are_sparse_and_thin_coins_have_empty_minutes(market: Market) -> None:
    start = NOW - HOUR_MS
    seconds = [market.candle("BTC", "1s", start + i * 1000, NOW) for i in range(600)]
    empty = sum(c is None for c in seconds)
    assert 0.2 < empty / 600 < 0.95
    minutes = [market.candle("DASH", "1m", start + i * MINUTE_MS, NOW) for i in range(60)]
    assert any(m is None for m in minutes)


def test_no_trades_before_listing_or_after_delisting(market: Market) -> None:
    hype = market.instrument("HYPE")
    assert market.trades("HYPE", hype.listed_ms - DAY_MS, hype.listed_ms) == []
    assert market.trades("HYPE", hype.listed_ms, hype.listed_ms + DAY_MS) != []
    matic = market.instrument("MATIC")
    assert matic.delisted_ms is not None
    assert market.trades("MATIC", matic.delisted_ms, matic.delisted_ms + DAY_MS) == []


def test_funding_is_eight_hourly_before_the_switch_then_hourly(market: Market) -> None:
    btc = market.instrument("BTC")
    before = market.funding_hours(btc, HOURLY_FUNDING_FROM_MS - 2 * DAY_MS,
                                  HOURLY_FUNDING_FROM_MS - 1)
    after = market.funding_hours(btc, HOURLY_FUNDING_FROM_MS, HOURLY_FUNDING_FROM_MS + DAY_MS)
    assert all(h % (8 * HOUR_MS) == 0 for h in before) and len(before) == 6
    assert len(after) == 25 and np.all(np.diff(after) == HOUR_MS)
    rows = market.funding(btc, after)
    assert all(0 < f.time_ms - f.hour_ms < 1000 for f in rows)
    assert rows == market.funding(btc, after)  # deterministic
    assert len({f.rate for f in rows}) > 1


@pytest.mark.parametrize(
    ("units", "decimals", "suffix", "text"),
    [
        (66745, 0, ".0", "66745.0"),
        (66745, 0, "", "66745"),
        (1604, 6, ".0", "0.001604"),
        (20184, 3, ".0", "20.184"),
        (-61334, 8, "", "-0.00061334"),
        (100000, 5, ".0", "1.0"),
        (125, 7, "", "0.0000125"),
    ],
)
def test_numbers_print_like_the_wire(units: int, decimals: int, suffix: str, text: str) -> None:
    assert format_decimal(units, decimals, suffix) == text
