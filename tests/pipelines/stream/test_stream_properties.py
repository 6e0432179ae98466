"""Properties of the whole core (parse → dedupe → aggregate) over generated trade sets
delivered in any order, with copies and late arrivals, as WebSocket text frames:

- the bars finally emitted equal aggregating the deduplicated trade set directly
  (o/c by (time, tid), h/l, v as the exact decimal sum, n), and a bucket without
  trades has none;
- every emission, first or corrected, is exactly the trades delivered so far whose
  exchange time lies in its bucket: nothing from after its end, nothing invented;
- a bar is emitted at or after its deadline (bucket end + grace), and a late trade
  brings a later revision with a strictly later ``fetched_at``.

Each runs with frames read by the native scanner and by msgspec alone (conftest).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperlake.pipelines.stream.bars import Bar, BarAggregator
from hyperlake.pipelines.stream.dedupe import TradeDeduper
from hyperlake.pipelines.stream.trades import TradeBatch, parse_frame
from hyperlake.schemas.intervals import MINUTE_MS, bucket_start, next_bucket

pytestmark = pytest.mark.usefixtures("frame_reader")  # conftest: both readers

START = 1_790_232_000_000
GRACE = 2_000
WINDOW_MS = 4 * MINUTE_MS  # inside the dedupe horizon and the retention (5 min)
MAX_DELAY_MS = 3 * MINUTE_MS  # late, but never too late
INTERVALS = ("1s", "1m", "3m", "5m", "1h")
COINS = ("BTC", "ETH", "kPEPE")


@dataclass(frozen=True)
class Tick:
    coin: str
    time: int
    tid: int
    px: str
    sz: str

    def wire(self) -> dict[str, object]:
        return {"coin": self.coin, "side": "B", "px": self.px, "sz": self.sz,
                "time": self.time, "hash": f"0x{self.tid:064x}", "tid": self.tid,
                "users": ["0x" + "1" * 40, "0x" + "2" * 40]}


@st.composite
def decimal_text(draw: st.DrawFn, max_whole: int, places: int) -> str:
    whole = draw(st.integers(0, max_whole))
    fraction = draw(st.integers(0 if whole else 1, 10**places - 1))
    return f"{whole}.{fraction:0{places}d}"


@st.composite
def ticks(draw: st.DrawFn) -> list[Tick]:
    count = draw(st.integers(1, 60))
    tids = draw(st.lists(st.integers(1, 2**50), min_size=count, max_size=count, unique=True))
    offsets = st.one_of(st.integers(0, WINDOW_MS - 1),
                        st.sampled_from([0, 1, 999, 1_000, 59_999, 60_000, 180_000]))
    return [Tick(draw(st.sampled_from(COINS)), START + draw(offsets), tid,
                 draw(decimal_text(100_000, draw(st.integers(1, 6)))),
                 draw(decimal_text(draw(st.sampled_from([10, 10**6, 10**9])),
                                   draw(st.integers(0, 8)) or 1)))
            for tid in tids]


def expected(trades: list[Tick], interval: str) -> dict[tuple[str, int], tuple[object, ...]]:
    """Bars by (coin, open) from the trades directly: the oracle."""
    groups: dict[tuple[str, int], list[Tick]] = {}
    for t in trades:
        groups.setdefault((t.coin, bucket_start(t.time, interval)), []).append(t)
    bars: dict[tuple[str, int], tuple[object, ...]] = {}
    for key, group in groups.items():
        group.sort(key=lambda t: (t.time, t.tid))
        prices = [float(t.px) for t in group]
        bars[key] = (float(group[0].px), max(prices), min(prices), float(group[-1].px),
                     float(sum(Decimal(t.sz) for t in group)), len(group))
    return bars


def as_tuple(bar: Bar) -> tuple[object, ...]:
    row = bar.row
    return row.o, row.h, row.l, row.c, row.v, row.n


def deliveries(trades: list[Tick], rng: random.Random) -> list[tuple[int, list[Tick]]]:
    """Frames (arrival ms, trades of one coin): every trade 1-3 times, each copy after a
    delay of up to MAX_DELAY_MS, in arrival order, runs of a coin cut into frames."""
    copies = [(t.time + rng.randint(0, MAX_DELAY_MS), t)
              for t in trades for _ in range(rng.choice((1, 1, 2, 3)))]
    copies.sort(key=lambda c: c[0])
    frames: list[tuple[int, list[Tick]]] = []
    for arrival, tick in copies:
        last = frames[-1] if frames else None
        if last and last[1][-1].coin == tick.coin and len(last[1]) < rng.randint(1, 8):
            last[1].append(tick)
            frames[-1] = (arrival, last[1])
        else:
            frames.append((arrival, [tick]))
    return frames


@settings(max_examples=120, deadline=None)
@given(ticks(), st.randoms(use_true_random=False))
def test_any_delivery_gives_the_bars_of_the_deduplicated_set(trades: list[Tick],
                                                              rng: random.Random) -> None:
    dedupe = TradeDeduper()
    bars = BarAggregator(INTERVALS, grace_ms=GRACE, start_ms=START)
    delivered: list[Tick] = []
    latest: dict[tuple[str, str, int], Bar] = {}
    late = 0

    def close(now: int) -> None:
        for bar in bars.close_due(now):
            key = (bar.coin, bar.interval, bar.row.t)
            # emitted at or after its deadline, as exactly what has been delivered
            assert now >= bar.row.t_close + 1 + GRACE
            assert as_tuple(bar) == expected(delivered, bar.interval)[(bar.coin, bar.row.t)]
            assert bar.row.t_close == next_bucket(bar.row.t, bar.interval) - 1
            previous = latest.get(key)
            if previous is None:
                assert bar.revision == 0
            else:
                assert bar.revision == previous.revision + 1
                assert bar.row.fetched_at > previous.row.fetched_at
            latest[key] = bar

    by_tid = {t.tid: t for t in trades}
    for arrival, frame in deliveries(trades, rng):
        close(arrival)
        text = orjson.dumps({"channel": "trades", "data": [t.wire() for t in frame]})
        batch = parse_frame(text.decode() if rng.random() < 0.5 else text)
        assert isinstance(batch, TradeBatch)
        fresh = dedupe.admit(batch)
        bars.add(fresh)
        delivered += [by_tid[tid] for tid in fresh.tids]
        late += sum((by_tid[tid].coin, "1s", bucket_start(by_tid[tid].time, "1s")) in latest
                    for tid in fresh.tids)  # its bar was out already: a revision must follow
    close(START + 3 * 3_600_000)
    assert bars.late_trades["1s"] >= late

    assert sorted(t.tid for t in delivered) == sorted(by_tid)  # each trade exactly once
    assert dedupe.stale == 0 and not any(bars.too_late_trades.values())
    for interval in INTERVALS:
        ours = {(c, t): as_tuple(bar) for (c, i, t), bar in latest.items() if i == interval}
        assert ours == expected(trades, interval)  # and so no bar for an empty bucket
    assert bars.open_bars(START + 3 * 3_600_000) == []
