"""Deduplicating trades on tid: replays and resends are refused, memory stays within
the exchange-time horizon, and what falls behind the horizon is refused as stale."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperlake.pipelines.stream.dedupe import DEFAULT_HORIZON_MS, TradeDeduper
from hyperlake.pipelines.stream.trades import Trade, TradeBatch

START = 1_790_232_000_000


def batch(coin: str, *trades: tuple[int, int]) -> TradeBatch:
    """A batch of (time offset ms, tid) trades."""
    return TradeBatch.of([Trade(coin, "B", 10.0, 1.0, START + t, "0x0", tid)
                          for t, tid in trades])


def test_new_trades_pass_untouched() -> None:
    dedupe = TradeDeduper()
    first = batch("BTC", (0, 1), (0, 2), (5, 3))
    assert dedupe.admit(first) is first
    assert dedupe.duplicates == dedupe.stale == 0


def test_the_replay_after_a_resubscribe_is_refused() -> None:
    dedupe = TradeDeduper()
    live = [(i * 100, 1000 + i) for i in range(60)]
    for i in range(0, 60, 6):
        dedupe.admit(batch("BTC", *live[i:i + 6]))
    replay = batch("BTC", *live[-30:], (6000, 2000), (6001, 2001))  # 30 old, 2 new
    kept = dedupe.admit(replay)
    assert kept.tids == [2000, 2001]
    assert dedupe.duplicates == 30


def test_a_resent_frame_is_refused_whole() -> None:
    dedupe = TradeDeduper()
    frame = batch("ETH", (0, 7), (1, 8))
    dedupe.admit(frame)
    assert len(dedupe.admit(frame)) == 0
    assert dedupe.duplicates == 2


def test_a_tid_twice_in_one_frame_counts_once() -> None:
    dedupe = TradeDeduper()
    kept = dedupe.admit(batch("BTC", (0, 1), (0, 2), (0, 1)))
    assert kept.tids == [1, 2] and dedupe.duplicates == 1
    assert dedupe.remembered() == 2


def test_trades_of_the_same_block_in_two_frames_both_count() -> None:
    dedupe = TradeDeduper()
    dedupe.admit(batch("BTC", (0, 1), (10, 2)))
    assert dedupe.admit(batch("BTC", (10, 3), (10, 4))).tids == [3, 4]


def test_an_older_trade_within_the_horizon_is_looked_up_not_refused() -> None:
    dedupe = TradeDeduper(horizon_ms=60_000)
    dedupe.admit(batch("BTC", (50_000, 1)))
    assert dedupe.admit(batch("BTC", (0, 2), (50_000, 1))).tids == [2]
    assert dedupe.stale == 0 and dedupe.duplicates == 1


def test_tids_are_remembered_per_coin_but_unique_across_coins() -> None:
    dedupe = TradeDeduper()
    dedupe.admit(batch("BTC", (0, 1)))
    # an idle coin's horizon is its own: ETH's old trade is not stale because BTC moved on
    dedupe.admit(batch("BTC", (DEFAULT_HORIZON_MS * 3, 2)))
    assert dedupe.admit(batch("ETH", (0, 3))).tids == [3]


def test_ids_behind_the_horizon_are_forgotten_and_their_trades_refused_as_stale() -> None:
    horizon = 8_000
    dedupe = TradeDeduper(horizon_ms=horizon)
    dedupe.admit(batch("BTC", (0, 1), (1, 2)))
    dedupe.admit(batch("BTC", (horizon // 2, 3)))
    assert dedupe.remembered() == 3
    dedupe.admit(batch("BTC", (horizon + 2, 4)))  # W - H = 2: trades at 0 and 1 are behind
    assert dedupe.remembered() == 4  # but forgotten only once H/8 behind
    dedupe.admit(batch("BTC", (horizon + horizon // 8 + 2, 5)))
    assert dedupe.remembered() == 3
    assert len(dedupe.admit(batch("BTC", (1, 2)))) == 0  # replayed, forgotten, still refused
    assert dedupe.stale == 1 and dedupe.duplicates == 0
    assert len(dedupe.admit(batch("BTC", (horizon // 2, 3)))) == 0  # remembered: duplicate
    assert dedupe.duplicates == 1


def test_memory_is_bounded_by_the_horizon_whatever_the_uptime() -> None:
    horizon = 60_000
    dedupe = TradeDeduper(horizon_ms=horizon)
    peak = 0

    def trade(tid: int) -> tuple[int, int]:  # 5 trades a second, 200 ms apart
        return tid // 5 * 1000 + tid % 5 * 200, tid

    for second in range(6 * 3600):
        dedupe.admit(batch("BTC", *[trade(tid) for tid in range(second * 5, second * 5 + 5)]))
        if second % 600 == 599:  # a resubscribe: the last 30 again
            last = second * 5 + 5
            dedupe.admit(batch("BTC", *[trade(tid) for tid in range(last - 30, last)]))
        peak = max(peak, dedupe.remembered())
    assert dedupe.duplicates == 36 * 30
    assert peak <= 5 * (horizon + horizon // 8) // 1000 + 10  # the trades of H + H/8


def test_the_horizon_must_be_positive() -> None:
    with pytest.raises(ValueError, match="horizon"):
        TradeDeduper(horizon_ms=0)


@given(st.lists(st.tuples(st.integers(0, 50_000), st.integers(0, 40)), max_size=60),
       st.randoms(use_true_random=False))
def test_any_order_with_copies_admits_each_trade_once(trades: list[tuple[int, int]],
                                                      rng: random.Random) -> None:
    """Within the horizon, whatever the order and the copies, each tid passes once."""
    unique = {tid: t for t, tid in trades}  # one time per tid, as on the exchange
    stream = [(t, tid) for tid, t in unique.items()]
    stream += rng.sample(stream, k=len(stream) // 2)
    rng.shuffle(stream)
    dedupe = TradeDeduper(horizon_ms=60_000)
    admitted: list[int] = []
    while stream:
        size = rng.randint(1, 7)
        admitted += dedupe.admit(batch("BTC", *stream[:size])).tids
        stream = stream[size:]
    assert sorted(admitted) == sorted(unique)
    assert dedupe.stale == 0
