"""Throughput and memory of the stream core (parse + dedupe + aggregate), beside the
popular recipe, in one run.

    python scripts/bench_stream.py [--trades 200000] [--intervals 1s,1m,5m] [--hours 24]

Throughput: recorded-shape ``trades`` frames (``coin, side, px, sz, time, hash, tid,
users`` as in tests/fixtures/ws_messages_real.jsonl; 8 coins with their own price and
size decimals, trades of a block sharing one time, and every ~400 frames a
resubscribe replaying the coin's last 30 trades) go through four implementations,
one after the other, each timed in CPU seconds of this process (so: one core, and
less sensitive to other load), best of 3:

* ``hyperlake``: ``parse_frame`` → ``TradeDeduper.admit`` → ``BarAggregator.add``, and
  ``close_due`` every 250 ms of the frames' clock; frames read by the native scanner
  (``_scan.c``);
* ``msgspec only``: the same with every frame read by ``parse_frame_general`` (what an
  install without a C compiler runs, and what the scanner's gain is measured against);
* ``recipe``: the popular recipe (the blog post "Building a Production-Grade Data
  Streamer for Hyperliquid"): ``json.loads``, its ``iter_trades`` generator with
  ``_safe_float`` and ``datetime.fromtimestamp``, one ``BarState`` per coin and
  interval under an ``RLock``, ``floor_to_window`` by ``datetime.replace``, a bar
  flushed when the next trade opens a new window (into a list: no CSV, no print).
  It knows one interval; it parses once and updates each interval's state per trade;
* ``lean``: the same idea written tight: ``json.loads``, a dict per coin and interval
  for the current bar, Python floats, integer bucketing, a set of seen tids.

First over a mix of frame sizes (1 to 100 trades, log-uniform: as many frames of 1-10
trades as of 10-100), then at fixed sizes, since a frame costs hyperlake a few µs
whatever it holds and each trade a fraction of a µs more. Prints trades/s, ns per trade,
hyperlake's speed-up and whether each run's bars equal hyperlake's (the recipe counts
the replays twice; the msgspec-only and lean runs, which dedupe, must agree exactly,
else the exit status is 1). Targets (reported, not enforced): ≥ 300,000 trades/s and ≥ 10x the
recipe.

Close-to-durable latency: ``hyperlake stream`` runs against the emulator in real time
(5 coins, 1s and 1m bars, grace 2 s) for --latency-seconds; each part file's write
time against its last bar's deadline (bucket end + grace) gives p50/p99 (target p99
≤ 1 s past the deadline), and the streamer's RSS is read before it stops.

Memory: a child process feeds 50 coins for --hours of emulated market time (a frame
per coin every 5 s, 0-8 trades, a replay now and then, ``close_due`` after every
step) and reports the process RSS and the size of the core's own state (deduper +
aggregator, every object reachable from them) after 1 h and after --hours. Target:
flat, the --hours figure within 1.2x of the 1 h one.

Measured (2026-11-30, Python 3.11, msgspec 0.23, the same 2-core VM; "quiet": load
average 0.5, nothing else running; "busy": the other core kept busy by a fuzzing run):

                            hyperlake               msgspec only    recipe
    mix 1-100, quiet        2.25 M trades/s 13.5x   1.37 M  8.2x    0.167 M
    mix 1-100, busy         2.30 M trades/s 13.8x   1.37 M  8.2x    0.166 M
    (hyperlake: 4.6x lean; with the scanner the core runs 1.6-1.7x the msgspec-only core)
    trades/frame    1       0.31 M/s    2.4-2.5x    2.2x
                    3       0.75-0.77   5.1x        3.1-3.2x
                    10      1.78-1.81   11.0-11.2x  6.4-6.5x
                    30      2.74-2.82   16.3-16.9x  9.8-10.0x
                    100     3.51-3.58   21.0x       12.1x
    memory, 50 coins: RSS 62.1 → 63.8 MiB (1.03x), core state 3.26 → 3.20 MiB
                      (8.2k buckets, 12.6k tids) from 1 h to 24 h
    close-to-durable (60 s, 5 coins, 1s + 1m): see the README's table

How the mix got past tenfold. Before the scanner (earlier the same day, both cores
busy) the core ran 1.28-1.43 M trades/s, 7.4-8.5x the recipe: an average frame (20.9
trades) cost ~14 µs, of which msgspec's decode into validated trade structs took ~5 µs
and the C-level passes that turn them into columns (four columns with the one-coin
check, the order check, the size sum, the set that finds an id twice, max/min of the
prices) ~3.7 µs, while tenfold allows ~12.5 µs for everything (the recipe spends ~6 µs a
trade). Tried and measured then, none enough: fusing parse, dedupe and aggregation
into one function (no gain: the calls are not the cost), mypyc on bars.py and dedupe.py
(+4-8 %; trades.py does not compile, mypyc drops msgspec's class keywords), Python 3.12
(8.2-8.5x; 3.13 4.7-4.9x, its json and datetime make the recipe 1.5x faster), and
coalescing a coin's frames into one batch (slower: 16.7-18.0 µs a frame against
15.3-16.6; holding and joining cost 2.7 µs, at most 0.6 µs saved). What did it: the
native scanner (``hyperlake/pipelines/stream/_scan.c``, ~700 lines of C, an optional
extension) reads the frame's text once, checking it as JSON, and writes the columns
straight from it (no trade objects; records are decoded by msgspec only when someone
stores trades), plus the frame's summary and whether a tid comes twice, so the
aggregator and the deduper skip their own passes on the usual frame. Per frame,
measured alone on the mix: the scanner 3.6-4.0 µs against msgspec plus the column
passes ~7.4 µs; admit 0.8 µs instead of 1.5; add and close 3.6 µs instead of 4.9;
the whole core 9.0 µs instead of 14.8 (same run). Of the scanner's time about 30 % is
finding the ends of strings (8 bytes at a time), 15 % the Python objects it makes.
Libraries first, frame text → the four columns, same frames (µs a frame): orjson plus
list comprehensions 12.4, pysimdjson's lazy document read item by item 8.3 (by JSON
pointer 26.2), msgspec structs plus comprehensions 5.9; the scanner 3.6-4.0 while also
checking every field, summarising the frame and checking its tids.
Its answers equal the msgspec path's on recorded, generated and randomly damaged frames
(tests/pipelines/stream/test_stream_scan.py), and scripts/fuzz_scan.py runs it under
AddressSanitizer and UBSan. (The recipe does not dedupe; given the seen-tid set that
hyperlake and lean pay for, it would be ~5 % slower: left out, it stays as published.)
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson

from hyperlake.pipelines.stream.bars import Bar, BarAggregator
from hyperlake.pipelines.stream.dedupe import TradeDeduper
from hyperlake.pipelines.stream.trades import (
    NATIVE_SCANNER,
    Frame,
    TradeBatch,
    parse_frame,
    parse_frame_general,
)
from hyperlake.schemas.intervals import FIXED_STEP_MS

START_MS = 1_790_232_000_000  # 2026-09-24T06:40:00Z
GRACE_MS = 2_000
CLOSE_EVERY_MS = 250
TARGET_RATE, TARGET_RATIO, TARGET_MEMORY = 300_000.0, 10.0, 1.2
REPLAY_EVERY, REPLAY_SIZE = 400, 30


@dataclass(frozen=True)
class Coin:
    name: str
    px: float
    px_decimals: int
    sz_decimals: int
    notional: float  # typical trade size in USD


COINS = (
    Coin("BTC", 84143.0, 1, 5, 4_000.0), Coin("ETH", 3421.5, 1, 4, 3_000.0),
    Coin("SOL", 145.23, 2, 2, 1_500.0), Coin("HYPE", 35.276, 3, 2, 1_200.0),
    Coin("XRP", 2.1345, 4, 0, 800.0), Coin("DOGE", 0.16543, 5, 0, 600.0),
    Coin("kPEPE", 0.012345, 6, 0, 500.0), Coin("@107", 35.281, 5, 2, 900.0),
)

Key = tuple[str, str, int]  # coin, interval, open ms
Ohlcvn = tuple[float, float, float, float, float, int]
Frames = list[tuple[str, int]]  # (frame text, arrival ms)


# -- frames ---------------------------------------------------------------------------


def _hex(rng: random.Random, digits: int) -> str:
    return "0x" + f"{rng.getrandbits(digits * 4):0{digits}x}"


def _trade(rng: random.Random, coin: Coin, px: float, time_ms: int, tid: int) -> dict[str, Any]:
    size = max(10.0 ** -coin.sz_decimals, rng.lognormvariate(0, 1.3) * coin.notional / px)
    return {"coin": coin.name, "side": rng.choice("AB"),
            "px": f"{px:.{coin.px_decimals}f}", "sz": f"{size:.{coin.sz_decimals}f}",
            "time": time_ms, "hash": _hex(rng, 64), "tid": tid,
            "users": [_hex(rng, 40), _hex(rng, 40)]}


def mixed_sizes(rng: random.Random) -> int:
    """Frame sizes from 1 to 100, log-uniform: as many of 1-10 as of 10-100 trades."""
    return int(math.exp(rng.uniform(0.0, math.log(100.5))))


def fixed_size(size: int) -> Callable[[random.Random], int]:
    def sizes(_rng: random.Random) -> int:
        return size
    return sizes


def make_frames(total: int, sizes: Callable[[random.Random], int] = mixed_sizes,
                seed: int = 7) -> Frames:
    """(frame text, arrival ms) in arrival order, about ``total`` trades in all."""
    rng = random.Random(seed)
    clocks = {c.name: START_MS + rng.randrange(1000) for c in COINS}
    prices = {c.name: c.px for c in COINS}
    recent: dict[str, list[dict[str, Any]]] = {c.name: [] for c in COINS}
    frames: Frames = []
    # tids rise in trade order within a coin (as the emulator's do), so a first trade
    # by (time, tid) is the first in frame order, which is what the others take
    tids = {c.name: (i + 1) << 44 for i, c in enumerate(COINS)}
    count = 0
    while count < total:
        coin = min(COINS, key=lambda c: clocks[c.name])
        name = coin.name
        trades = []
        block_ms = clocks[name]
        for _ in range(sizes(rng)):
            prices[name] *= 1 + rng.gauss(0, 0.0002)
            tids[name] += rng.randrange(1, 50)
            if rng.random() < 0.3:
                block_ms += rng.randrange(1, 40)  # a later block within the frame
            trades.append(_trade(rng, coin, prices[name], block_ms, tids[name]))
        count += len(trades)
        arrival = block_ms + rng.randrange(20, 300)
        frames.append((orjson.dumps({"channel": "trades", "data": trades}).decode(), arrival))
        recent[name] = (recent[name] + trades)[-REPLAY_SIZE:]
        if len(frames) % REPLAY_EVERY == 0:  # a resubscribe: the last 30 trades again
            replay = {"channel": "trades", "data": recent[name]}
            frames.append((orjson.dumps(replay).decode(), arrival + 1))
        clocks[name] = block_ms + rng.randrange(30, 1500)
    return frames


# -- the three implementations --------------------------------------------------------


def run_hyperlake(frames: Frames, intervals: list[str],
                  parse: Callable[[str], Frame] = parse_frame) -> list[Bar]:
    dedupe = TradeDeduper()
    bars = BarAggregator(intervals, grace_ms=GRACE_MS, start_ms=START_MS)
    out: list[Bar] = []
    next_close = START_MS
    for text, now in frames:
        frame = parse(text)
        if isinstance(frame, TradeBatch):
            bars.add(dedupe.admit(frame))
        if now >= next_close:
            out.extend(bars.close_due(now))
            next_close = now + CLOSE_EVERY_MS
    out.extend(bars.open_bars(frames[-1][1]))
    return out


def hyperlake_bars(out: list[Bar]) -> dict[Key, Ohlcvn]:
    return {(b.coin, b.interval, b.row.t): (b.row.o, b.row.h, b.row.l, b.row.c, b.row.v,
                                            b.row.n) for b in out}


LeanBars = list[tuple[str, str, dict[str, Any]]]


def run_lean(frames: Frames, intervals: list[str]) -> LeanBars:
    steps = [(name, FIXED_STEP_MS[name]) for name in intervals]
    current: dict[tuple[str, str], dict[str, Any]] = {}
    done: LeanBars = []
    seen: set[int] = set()
    for text, _ in frames:
        message = json.loads(text)
        if message.get("channel") != "trades":
            continue
        for trade in message["data"]:
            tid = trade["tid"]
            if tid in seen:
                continue
            seen.add(tid)
            coin, t = trade["coin"], trade["time"]
            px, sz = float(trade["px"]), float(trade["sz"])
            for name, step in steps:
                start = t // step * step
                bar = current.get((coin, name))
                if bar is None or bar["t"] != start:
                    if bar is not None:
                        done.append((coin, name, bar))
                    current[(coin, name)] = {"t": start, "o": px, "h": px, "l": px, "c": px,
                                             "v": sz, "n": 1}
                else:
                    if px > bar["h"]:
                        bar["h"] = px
                    if px < bar["l"]:
                        bar["l"] = px
                    bar["c"] = px
                    bar["v"] += sz
                    bar["n"] += 1
    done.extend((coin, name, bar) for (coin, name), bar in current.items())
    return done


def lean_bars(done: LeanBars) -> dict[Key, Ohlcvn]:
    return {(coin, name, b["t"]): (b["o"], b["h"], b["l"], b["c"], b["v"], b["n"])
            for coin, name, b in done}


class BarState:
    """The recipe's per-coin bar (its dataclass, with __init__ written out)."""

    def __init__(self) -> None:
        self.open: float | None = None
        self.high = float("-inf")
        self.low = float("inf")
        self.close: float | None = None
        self.volume = 0.0
        self.count = 0  # not in the recipe; kept so its bars can be compared
        self.window_start: datetime | None = None

    def update(self, price: float, volume: float) -> None:
        if self.open is None:
            self.open = self.high = self.low = self.close = price
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.close = price
        self.volume += max(volume, 0.0)
        self.count += 1

    def reset_for(self, window_start: datetime, price: float, volume: float) -> None:
        self.open = self.high = self.low = self.close = price
        self.volume = max(volume, 0.0)
        self.count = 1
        self.window_start = window_start


def _safe_float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def iter_trades(payload: dict[str, Any]) -> Iterator[tuple[str, float, float, datetime]]:
    """The recipe's parser, verbatim but for types."""
    data = payload.get("data")
    if not isinstance(data, list):
        return
    for entry in data:
        if not isinstance(entry, dict):
            continue
        coin = entry.get("coin") or entry.get("symbol")
        if not coin:
            continue
        price = _safe_float(entry.get("px") or entry.get("price"))
        size = _safe_float(entry.get("sz") or entry.get("size"))
        if price is None or size is None:
            continue
        ts = entry.get("time") or entry.get("timestamp") or entry.get("ts")
        if isinstance(ts, (int, float)):
            ts_val = float(ts)
            if ts_val > 1e12:
                ts_val /= 1000.0
            trade_dt = datetime.fromtimestamp(ts_val, tz=UTC).replace(tzinfo=None)
        else:
            trade_dt = datetime.now(UTC).replace(tzinfo=None)
        yield str(coin).upper(), price, size, trade_dt


def _floor(interval: str) -> Callable[[datetime], datetime]:
    """The recipe's floor_to_window for one interval (it has minutes; 1s floors the µs)."""
    if interval == "1s":
        return lambda dt_utc: dt_utc.replace(microsecond=0)
    minutes = FIXED_STEP_MS[interval] // 60_000

    def floor_to_window(dt_utc: datetime) -> datetime:
        minute = (dt_utc.minute // minutes) * minutes
        return dt_utc.replace(minute=minute, second=0, microsecond=0)
    return floor_to_window


RecipeBars = list[tuple[str, str, datetime, Ohlcvn]]


def run_recipe(frames: Frames, intervals: list[str]) -> RecipeBars:
    lock = threading.RLock()
    floors = {name: _floor(name) for name in intervals}
    bars: dict[tuple[str, str], BarState] = {}
    flushed: RecipeBars = []

    def flush_bar(coin: str, interval: str, state: BarState) -> None:
        assert state.window_start is not None and state.open is not None
        assert state.close is not None
        flushed.append((coin, interval, state.window_start, (
            state.open, state.high, state.low, state.close, state.volume, state.count)))

    def update_bar(coin: str, price: float, volume: float, trade_dt: datetime,
                   interval: str) -> None:
        with lock:
            state = bars.get((coin, interval))
            if state is None:
                state = bars[(coin, interval)] = BarState()
            window_start = floors[interval](trade_dt)
            if state.window_start is None:
                state.reset_for(window_start, price, volume)
            elif window_start > state.window_start:
                flush_bar(coin, interval, state)
                state.reset_for(window_start, price, volume)
            else:
                state.update(price, volume)

    for text, _ in frames:
        try:
            payload = json.loads(text)
        except json.JSONDecodeError:
            continue
        if payload.get("channel") != "trades":
            continue
        for coin, price, size, trade_dt in iter_trades(payload):
            for interval in intervals:
                update_bar(coin, price, size, trade_dt, interval)
    for (coin, interval), state in bars.items():
        flush_bar(coin, interval, state)
    return flushed


def recipe_bars(flushed: RecipeBars) -> dict[Key, Ohlcvn]:
    return {(coin, interval, int(start.replace(tzinfo=UTC).timestamp() * 1000)): values
            for coin, interval, start, values in flushed}


# -- measuring ------------------------------------------------------------------------


def best_seconds(runs: int, work: Callable[[], object]) -> float:
    """The least CPU time (this process, so one core) of ``runs`` runs of ``work``."""
    best = float("inf")
    for _ in range(runs):
        gc.collect()
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def differing(bars: dict[Key, Ohlcvn], exact: dict[Key, Ohlcvn]) -> int:
    """Bars of ``bars`` that are missing from ``exact`` or differ (v to 1e-9 relative)."""
    def same(a: Ohlcvn, b: Ohlcvn) -> bool:
        return a[:4] == b[:4] and a[5] == b[5] and abs(a[4] - b[4]) <= 1e-9 * b[4]
    keys = bars.keys() | exact.keys()
    return sum(1 for k in keys if k not in bars or k not in exact or not same(bars[k], exact[k]))


@dataclass(frozen=True)
class Row:
    name: str
    rate: float  # trades per CPU second
    differing: int  # bars unlike hyperlake's


def measure(frames: Frames, intervals: list[str], runs: int) -> list[Row]:
    """hyperlake (native scanner, then msgspec alone), lean and recipe over the same
    frames (timing excludes turning each one's bars into comparable form afterwards)."""
    counted = sum(text.count('"tid"') for text, _ in frames)
    exact = hyperlake_bars(run_hyperlake(frames, intervals))
    general = partial(run_hyperlake, frames, intervals, parse_frame_general)
    rows = []
    for name, seconds, bars in (
        ("hyperlake", best_seconds(runs, partial(run_hyperlake, frames, intervals)),
         exact),
        ("  msgspec only", best_seconds(runs, general), hyperlake_bars(general())),
        ("lean", best_seconds(runs, partial(run_lean, frames, intervals)),
         lean_bars(run_lean(frames, intervals))),
        ("recipe", best_seconds(runs, partial(run_recipe, frames, intervals)),
         recipe_bars(run_recipe(frames, intervals))),
    ):
        rows.append(Row(name, counted / seconds, differing(bars, exact)))
    return rows


def throughput(trades: int, intervals: list[str]) -> bool:
    frames = make_frames(trades)
    counted = sum(text.count('"tid"') for text, _ in frames)
    print(f"{len(frames):,} frames of 1-100 trades (log-uniform; {counted / len(frames):.1f} "
          f"on average), {counted:,} trades (replays included), {len(COINS)} coins, "
          f"intervals {','.join(intervals)}; CPU time, best of 3, one core; "
          f"load average {os.getloadavg()[0]:.1f}; native scanner "
          f"{'built' if NATIVE_SCANNER else 'NOT built (both hyperlake rows: msgspec)'}\n",
          flush=True)
    rows = measure(frames, intervals, 3)
    fast, general, recipe = rows[0].rate, rows[1].rate, rows[3].rate
    print(f"{'implementation':<16}{'trades/s':>12}{'ns/trade':>10}{'hyperlake x':>13}"
          f"{'bars differing':>16}")
    for row in rows:
        print(f"{row.name:<16}{row.rate:>12,.0f}{1e9 / row.rate:>10,.0f}"
              f"{fast / row.rate:>12.1f}x{row.differing:>16,}")
    met = fast >= TARGET_RATE and fast / recipe >= TARGET_RATIO
    print(f"\ntargets: >= {TARGET_RATE:,.0f} trades/s, >= {TARGET_RATIO:.0f}x the recipe: "
          f"{'met' if met else 'NOT met'} ({fast / recipe:.1f}x; msgspec only "
          f"{general / recipe:.1f}x)", flush=True)
    return rows[1].differing == 0 and rows[2].differing == 0


def by_frame_size(trades: int, intervals: list[str]) -> None:
    """The same four at fixed frame sizes: what a frame costs, whatever its trades."""
    print(f"\nby frame size (about {trades:,} trades each, best of 3):")
    print(f"{'trades/frame':<14}{'hyperlake/s':>13}{'msgspec/s':>11}{'lean/s':>11}"
          f"{'recipe/s':>11}{'x lean':>8}{'x recipe':>10}{'msgspec x':>11}")
    for size in (1, 3, 10, 30, 100):
        frames = make_frames(trades, fixed_size(size))
        fast, general, lean, recipe = (row.rate for row in measure(frames, intervals, 3))
        print(f"{size:<14}{fast:>13,.0f}{general:>11,.0f}{lean:>11,.0f}{recipe:>11,.0f}"
              f"{fast / lean:>7.1f}x{fast / recipe:>9.1f}x{general / recipe:>10.1f}x",
              flush=True)


# -- memory (child process) -----------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def deep_size(*roots: object) -> int:
    """Bytes of every object reachable from ``roots`` (shared objects once)."""
    seen: set[int] = set()
    stack = list(roots)
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def emulate_memory(hours: int, intervals: list[str]) -> None:
    """Feed 50 coins for ``hours``; print JSON samples after 1 h and at the end."""
    from hyperlake.pipelines.stream.trades import Trade

    rng = random.Random(11)
    coins = [f"C{i:02d}" for i in range(50)]
    dedupe = TradeDeduper()
    bars = BarAggregator(intervals, grace_ms=GRACE_MS, start_ms=START_MS)
    recent: dict[str, TradeBatch] = {}
    tid = 1 << 40
    samples = []
    step_ms = 5_000
    for step in range(hours * 3600_000 // step_ms):
        now = START_MS + step * step_ms
        for coin in coins:
            count = rng.randrange(9)
            if not count:
                continue
            times = sorted(now - step_ms + rng.randrange(step_ms) for _ in range(count))
            records = []
            for t in times:
                tid += 1 + rng.randrange(3)
                records.append(Trade(coin, "B", 10.0 + rng.random(), 0.5, t, "0x0", tid))
            batch = TradeBatch.of(records)
            bars.add(dedupe.admit(batch))
            recent[coin] = batch
        if step % 97 == 0:  # a resubscribe replays a coin's last frame
            bars.add(dedupe.admit(recent[rng.choice(list(recent))]))
        bars.close_due(now + 200)
        elapsed_h = (step + 1) * step_ms / 3600_000
        if elapsed_h in (1, hours):
            gc.collect()
            samples.append({"hours": elapsed_h, "rss": rss_bytes(),
                            "state": deep_size(dedupe, bars), "buckets": bars.held_buckets(),
                            "tids": dedupe.remembered()})
    print(json.dumps(samples))


def memory(hours: int, intervals: list[str]) -> None:
    child = subprocess.run([sys.executable, __file__, "--memory-child", str(hours),
                            "--intervals", ",".join(intervals)],
                           check=True, capture_output=True, text=True)
    samples: list[dict[str, float]] = json.loads(child.stdout)
    first, last = samples
    print(f"\nmemory, 50 coins, intervals {','.join(intervals)} (child process):")
    print(f"{'after':<8}{'RSS MiB':>10}{'core state MiB':>16}{'buckets':>10}{'tids':>10}")
    for s in (first, last):
        print(f"{s['hours']:>4.0f} h  {s['rss'] / 2**20:>10.1f}{s['state'] / 2**20:>16.2f}"
              f"{s['buckets']:>10,}{s['tids']:>10,}")
    rss_ratio, state_ratio = last["rss"] / first["rss"], last["state"] / first["state"]
    met = rss_ratio <= TARGET_MEMORY and state_ratio <= TARGET_MEMORY
    print(f"{hours} h / 1 h: RSS {rss_ratio:.2f}x, core state {state_ratio:.2f}x "
          f"(target <= {TARGET_MEMORY}x): {'met' if met else 'NOT met'}")


def latency(seconds: float, coins: list[str]) -> None:
    """Close-to-durable: ``hyperlake stream`` against the emulator in real time; for
    each part it wrote, how long after its last bar's deadline (bucket end + grace) the
    file was durable (its mtime: the moment of the atomic rename's write)."""
    import shutil
    import signal
    import tempfile
    from pathlib import Path

    from hyperlake.emulator.server import Emulator
    from hyperlake.lake.paths import PART

    lake = Path(tempfile.mkdtemp(prefix="hyperlake-bench-stream-"))
    grace_s = 2.0
    try:
        with Emulator() as emu:
            env = {**os.environ, "HYPERLAKE_HYPERLIQUID_URL": emu.urls.hyperliquid,
                   "HYPERLAKE_WS_URL": emu.urls.ws, "HYPERLAKE_LAKE": str(lake)}
            env.pop("HYPERLAKE_NOW", None)
            started = time.time()
            process = subprocess.Popen(
                [sys.executable, "-m", "hyperlake.cli", "stream", "--coins", ",".join(coins),
                 "--intervals", "1s,1m", "--grace", f"{grace_s:g}s", "--compact-every", "0"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(seconds)
            rss = _rss_of(process.pid)
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)
        # each bucket's first durable appearance (corrections of older bars and the
        # buckets decided at the start are not what this measures)
        first: dict[tuple[str, int], float] = {}
        for path in lake.glob("_checkpoints/candles/stream/*/*/job-*/live/part-*.parquet"):
            span = PART.parse(path.name)
            if span is not None:
                key = (str(path.parents[3]), span.end)
                first[key] = min(first.get(key, math.inf), path.stat().st_mtime)
        waits = [mtime - (end / 1000 + grace_s) for (_, end), mtime in first.items()
                 if end / 1000 > started + 5]
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    waits.sort()
    p50, p99 = waits[len(waits) // 2], waits[min(len(waits) - 1, int(len(waits) * 0.99))]
    print(f"\nclose-to-durable, {len(coins)} coins x 1s,1m for {seconds:g} s in real time "
          f"({len(waits)} part files): p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"max {waits[-1] * 1000:.0f} ms past the deadline (target p99 <= 1000 ms: "
          f"{'met' if p99 <= 1.0 else 'NOT met'}); streamer RSS {rss / 2**20:.0f} MiB")


def _rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trades", type=int, default=200_000)
    parser.add_argument("--intervals", default="1s,1m,5m")
    parser.add_argument("--hours", type=int, default=24,
                        help="emulated hours for the memory figures (at least 2)")
    parser.add_argument("--latency-seconds", type=float, default=60.0,
                        help="how long the real-time streamer runs for the latency figures")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    intervals = args.intervals.split(",")
    if args.hours < 2:
        parser.error("--hours must be at least 2 (the memory figures compare 1 h with it)")
    if args.memory_child:
        emulate_memory(args.memory_child, intervals)
        return
    agree = throughput(args.trades, intervals)
    by_frame_size(args.trades // 4, intervals)
    memory(args.hours, intervals)
    if args.latency_seconds > 0:
        latency(args.latency_seconds, ["BTC", "ETH", "SOL", "HYPE", "kPEPE"])
    sys.exit(0 if agree else 1)  # targets are reported; only wrong bars fail the run


if __name__ == "__main__":
    main()
