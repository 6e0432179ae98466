"""The emulator's deterministic market model.

From a seed, every coin gets a stream of trades; every candle of every interval, from
every emulated source, is the exact aggregation of those trades, and funding follows
from the seed too. So sources can be reconciled against each other, and a trade
stream against REST candles.

Random access: trades are generated one UTC day at a time from a counter-based
generator (Philox keyed by seed, coin and day), and the slow price path and trading
intensity are value noise over hashed knots, so any second of any month is served
without generating history from the start. Prices and sizes are integers (ticks and
lots), so aggregates (volume, quote volume) are exact; formatting to the wire's
decimal strings happens at the edge.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hyperlake.emulator.universe import Instrument, Universe, load_universe
from hyperlake.schemas.exchange import HOURLY_FUNDING_FROM_MS
from hyperlake.schemas.intervals import DAY_MS, HOUR_MS, bucket_start, next_bucket

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: Hyperliquid funded every 8 hours before this instant and hourly from it on.
_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15

# (knot spacing ms, amplitude in log-price): roughly a random walk with 3 % daily vol.
_PRICE_OCTAVES: tuple[tuple[int, float], ...] = tuple(
    (spacing, 0.03 * math.sqrt(spacing / DAY_MS))
    for spacing in (90 * DAY_MS, 7 * DAY_MS, DAY_MS, 4 * HOUR_MS, 1_800_000, 300_000, 60_000,
                    10_000)
)
_ACTIVITY_OCTAVES: tuple[tuple[int, float], ...] = ((6 * HOUR_MS, 0.8), (900_000, 0.9),
                                                    (120_000, 0.6))
_PREMIUM_OCTAVES: tuple[tuple[int, float], ...] = ((3 * DAY_MS, 0.0009), (12 * HOUR_MS, 0.0004))
_HALF_SPREAD = 0.0001
#: A trade id is ``(ordinal + 1) << 42 | day << 20 | index within the day``: unique
#: across coins and days, increasing with time within a coin, below 2**53 (JSON-safe).
TID_DAY_BITS = 20
#: How many UTC days before today ``recent_trades`` looks back at most.
RECENT_LOOKBACK_DAYS = 2
_MEAN_LOG_NOTIONAL = math.log(400.0)


def _splitmix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    z = x + np.uint64(_GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _key(*parts: object) -> int:
    text = "/".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _unit(key: int, index: npt.NDArray[np.int64]) -> F64:
    """Uniform [-1, 1) values, a pure function of (key, index)."""
    with np.errstate(over="ignore"):
        h = _splitmix64(index.astype(np.uint64) * np.uint64(0xD1B54A32D192ED03) + np.uint64(key))
    return (h >> np.uint64(11)).astype(np.float64) * (2.0 / 2**53) - 1.0


def value_noise(key: int, octaves: tuple[tuple[int, float], ...], t_ms: I64) -> F64:
    """Sum of piecewise-linear noise octaves at times ``t_ms``: continuous, random access."""
    total = np.zeros(len(t_ms), dtype=np.float64)
    if len(t_ms) == 0:
        return total
    origin = int(t_ms.min())
    rel = (t_ms - origin).astype(np.float64)
    for level, (spacing, amplitude) in enumerate(octaves):
        first = origin // spacing
        pos = rel / spacing + (origin - first * spacing) / spacing  # knots past `first`
        offset = pos.astype(np.int64)
        frac = pos - offset
        knots = _unit(_key(key, level),
                      np.arange(first, first + int(offset.max()) + 2, dtype=np.int64))
        left = knots[offset]
        total += amplitude * (left + (knots[offset + 1] - left) * frac)
    return total


@dataclass(frozen=True)
class Candle:
    """An aggregate of trades in [open_ms, close_ms]; prices in ticks, sizes in lots."""

    open_ms: int
    close_ms: int  # T = next open - 1
    o: int
    h: int
    low: int
    c: int
    volume_lots: int
    quote_units: int  # sum of ticks * lots
    trades: int
    closed: bool


@dataclass(frozen=True)
class Trade:
    time_ms: int
    ticks: int
    lots: int
    is_buy: bool
    tid: int


@dataclass(frozen=True)
class Funding:
    hour_ms: int
    time_ms: int
    rate: str
    premium: str


class DayTape:
    """All trades of one coin on one UTC day, sorted by time, with prefix sums so
    volume, quote volume and count over any time range cost O(1) after the span
    lookup. Python-list mirrors serve the small spans (a 1s or 1m candle) without
    paying numpy's per-call overhead: that is the emulator's hot path."""

    def __init__(self, day_start: int, times: I64, ticks: I64, lots: I64,
                 buys: npt.NDArray[np.bool_], first_tid: int) -> None:
        self.day_start = day_start
        self.times = times
        self.ticks = ticks
        self.lots = lots
        self.buys = buys
        self.first_tid = first_tid
        self.cum_lots = np.concatenate(([0], np.cumsum(lots))).tolist()
        self.cum_quote = np.concatenate(([0], np.cumsum(ticks * lots))).tolist()
        self.tick_list: list[int] = ticks.tolist()
        edges = day_start + np.arange(0, DAY_MS + 1, 1000, dtype=np.int64)
        self.second_bounds: list[int] = np.searchsorted(times, edges).tolist()

    def __len__(self) -> int:
        return len(self.times)

    def span(self, start_ms: int, end_ms: int) -> tuple[int, int]:
        """Index range of this day's trades with start_ms <= time < end_ms. Either bound
        may lie outside the day: both are clamped to it first (an unclamped bound on a
        second would index ``second_bounds`` out of range, or from its end)."""
        day_start, bounds = self.day_start, self.second_bounds
        rel_start = min(max(start_ms - day_start, 0), DAY_MS)
        rel_end = min(max(end_ms - day_start, 0), DAY_MS)
        lo = bounds[rel_start // 1000] if rel_start % 1000 == 0 else int(
            np.searchsorted(self.times, day_start + rel_start))
        hi = bounds[rel_end // 1000] if rel_end % 1000 == 0 else int(
            np.searchsorted(self.times, day_start + rel_end))
        return lo, hi


def _tape_trades(tape: DayTape, lo: int, hi: int) -> list[Trade]:
    """The trades at indices [lo, hi) of a day tape."""
    columns = (tape.times[lo:hi].tolist(), tape.tick_list[lo:hi], tape.lots[lo:hi].tolist(),
               tape.buys[lo:hi].tolist())
    return [Trade(time_ms, ticks, lots, is_buy, tape.first_tid + lo + offset)
            for offset, (time_ms, ticks, lots, is_buy) in enumerate(zip(*columns, strict=True))]


class Market:
    """Trades, candles and funding for every instrument of a universe, from a seed."""

    def __init__(self, seed: int = 0, universe: Universe | None = None,
                 tape_cache_days: int = 24) -> None:
        self.seed = seed
        self.universe = universe or load_universe()
        self._tapes: OrderedDict[tuple[str, int], DayTape] = OrderedDict()
        self._tape_cache_days = tape_cache_days
        self._day_candles: dict[tuple[str, int], Candle | None] = {}

    # -- trades ---------------------------------------------------------------------

    def instrument(self, coin: str) -> Instrument:
        inst = self.universe.get(coin)
        if inst is None:
            raise KeyError(coin)
        return inst

    def mid_price(self, inst: Instrument, t_ms: I64) -> F64:
        path = value_noise(_key(self.seed, inst.name, "px"), _PRICE_OCTAVES, t_ms)
        return inst.base_px * np.exp(path)

    def tape(self, coin: str, day: int) -> DayTape:
        """Trades of ``coin`` on UTC day number ``day`` (days since the epoch)."""
        cache_key = (coin, day)
        tape = self._tapes.get(cache_key)
        if tape is not None:
            self._tapes.move_to_end(cache_key)
            return tape
        tape = self._generate_tape(self.instrument(coin), day)
        self._tapes[cache_key] = tape
        if len(self._tapes) > self._tape_cache_days:
            self._tapes.popitem(last=False)
        return tape

    def _generate_tape(self, inst: Instrument, day: int) -> DayTape:
        day_start = day * DAY_MS
        rng = np.random.Generator(np.random.Philox(key=[_key(self.seed, inst.name), day]))
        seconds = day_start + np.arange(0, DAY_MS, 1000, dtype=np.int64)
        # Intensity varies over minutes: evaluating it every 10 s is plenty.
        tens = day_start + np.arange(0, DAY_MS, 10_000, dtype=np.int64)
        activity = np.repeat(
            value_noise(_key(self.seed, inst.name, "act"), _ACTIVITY_OCTAVES, tens), 10)
        counts = rng.poisson(inst.liquidity * np.exp(1.5 * activity - 0.6))
        alive = seconds >= inst.listed_ms
        if inst.delisted_ms is not None:
            alive &= seconds < inst.delisted_ms
        counts = np.where(alive, counts, 0)
        n = int(counts.sum())
        times = np.sort(np.repeat(seconds, counts) + rng.integers(0, 1000, n, dtype=np.int64))
        buys = rng.integers(0, 2, n).astype(np.bool_)
        mid = self.mid_price(inst, times)
        side = np.where(buys, 1.0, -1.0)
        px = mid * (1.0 + side * _HALF_SPREAD + rng.normal(0.0, _HALF_SPREAD, n))
        tick = 10.0 ** -inst.px_decimals
        ticks = np.maximum(1, np.rint(px / tick)).astype(np.int64)
        notional = np.exp(rng.normal(_MEAN_LOG_NOTIONAL, 1.3, n))
        lot = 10.0 ** -inst.sz_decimals
        lots = np.maximum(1, np.rint(notional / (ticks * tick) / lot)).astype(np.int64)
        if n >= 1 << TID_DAY_BITS:
            raise ValueError(f"{inst.name}: {n} trades on day {day} overflow the trade ids")
        first_tid = ((inst.ordinal + 1) << 42) | (day << TID_DAY_BITS)
        return DayTape(day_start, times, ticks, lots, buys, first_tid)

    def trades(self, coin: str, start_ms: int, end_ms: int) -> list[Trade]:
        """Trades with start_ms <= time < end_ms, in time order."""
        out: list[Trade] = []
        for day in range(start_ms // DAY_MS, (end_ms - 1) // DAY_MS + 1):
            tape = self.tape(coin, day)
            out.extend(_tape_trades(tape, *tape.span(start_ms, end_ms)))
        return out

    def recent_trades(self, coin: str, now_ms: int, count: int,
                      lookback_days: int = RECENT_LOOKBACK_DAYS) -> list[Trade]:
        """The last ``count`` trades with time <= now_ms, in time order: fewer when the
        coin traded less than that over its current UTC day and the ``lookback_days``
        before it (a thin or delisted coin)."""
        newest_first: list[list[Trade]] = []
        wanted = count
        today = now_ms // DAY_MS
        for day in range(today, today - lookback_days - 1, -1):
            if wanted <= 0:
                break
            tape = self.tape(coin, day)
            lo, hi = tape.span(day * DAY_MS, min(now_ms + 1, (day + 1) * DAY_MS))
            first = max(lo, hi - wanted)
            newest_first.append(_tape_trades(tape, first, hi))
            wanted -= hi - first
        return [trade for piece in reversed(newest_first) for trade in piece]

    # -- candles --------------------------------------------------------------------

    def candle(self, coin: str, interval: str, open_ms: int, now_ms: int) -> Candle | None:
        """The candle of ``interval`` opening at ``open_ms`` as seen at ``now_ms``:
        None when no trade happened in it (yet). An open candle aggregates the
        trades up to and including ``now_ms``."""
        if open_ms > now_ms:
            return None
        next_open = next_bucket(open_ms, interval)
        closed = next_open <= now_ms
        end = next_open if closed else now_ms + 1
        parts = self._aggregate(coin, open_ms, end)
        if parts is None:
            return None
        o, h, low, c, vol, quote, n = parts
        return Candle(open_ms, next_open - 1, o, h, low, c, vol, quote, n, closed)

    def _aggregate(self, coin: str, start_ms: int,
                   end_ms: int) -> tuple[int, int, int, int, int, int, int] | None:
        day = start_ms // DAY_MS
        if (end_ms - 1) // DAY_MS == day and end_ms - start_ms < DAY_MS:
            return self._aggregate_within_day(coin, day, start_ms, end_ms)  # the hot path
        pieces = []
        while day * DAY_MS < end_ms:
            day_start, day_end = day * DAY_MS, (day + 1) * DAY_MS
            if start_ms <= day_start and day_end <= end_ms:
                whole = self._day_candle(coin, day)
                if whole is not None:
                    pieces.append((whole.o, whole.h, whole.low, whole.c, whole.volume_lots,
                                   whole.quote_units, whole.trades))
            else:
                piece = self._aggregate_within_day(coin, day, max(start_ms, day_start),
                                                   min(end_ms, day_end))
                if piece is not None:
                    pieces.append(piece)
            day += 1
        if not pieces:
            return None
        return (pieces[0][0], max(p[1] for p in pieces), min(p[2] for p in pieces),
                pieces[-1][3], sum(p[4] for p in pieces), sum(p[5] for p in pieces),
                sum(p[6] for p in pieces))

    def _aggregate_within_day(self, coin: str, day: int, start_ms: int,
                              end_ms: int) -> tuple[int, int, int, int, int, int, int] | None:
        tape = self.tape(coin, day)
        lo, hi = tape.span(start_ms, end_ms)
        if hi <= lo:
            return None
        ticks = tape.tick_list
        if hi - lo <= 256:
            window = ticks[lo:hi]
            high, low = max(window), min(window)
        else:
            array = tape.ticks[lo:hi]
            high, low = int(array.max()), int(array.min())
        return (ticks[lo], high, low, ticks[hi - 1], tape.cum_lots[hi] - tape.cum_lots[lo],
                tape.cum_quote[hi] - tape.cum_quote[lo], hi - lo)

    def _day_candle(self, coin: str, day: int) -> Candle | None:
        key = (coin, day)
        if key not in self._day_candles:
            parts = self._aggregate_within_day(coin, day, day * DAY_MS, (day + 1) * DAY_MS)
            self._day_candles[key] = None if parts is None else Candle(
                day * DAY_MS, (day + 1) * DAY_MS - 1, *parts, closed=True)
        return self._day_candles[key]

    def candles(self, coin: str, interval: str, first_open_ms: int, last_open_ms: int,
                now_ms: int, limit: int) -> list[Candle]:
        """Non-empty candles opening in [first_open_ms, last_open_ms], at most ``limit``."""
        out: list[Candle] = []
        t = bucket_start(first_open_ms, interval)
        last = min(last_open_ms, now_ms)
        while t <= last and len(out) < limit:
            c = self.candle(coin, interval, t, now_ms)
            if c is not None:
                out.append(c)
            t = next_bucket(t, interval)
        return out

    # -- funding --------------------------------------------------------------------

    def funding_hours(self, inst: Instrument, start_ms: int, end_ms: int,
                      limit: int = 1 << 62) -> list[int]:
        """Funding hours (at most ``limit``) whose event time could fall in
        [start_ms, end_ms]: the event lands milliseconds after its hour."""
        first = max(start_ms - HOUR_MS + 1, inst.listed_ms)
        first = (first + HOUR_MS - 1) // HOUR_MS * HOUR_MS
        last = end_ms if inst.delisted_ms is None else min(end_ms, inst.delisted_ms - 1)
        hours: list[int] = []
        h = first
        while h <= last and len(hours) < limit:
            if h >= HOURLY_FUNDING_FROM_MS or h % (8 * HOUR_MS) == 0:
                hours.append(h)
            h += HOUR_MS
        return hours

    def funding(self, inst: Instrument, hours: list[int]) -> list[Funding]:
        if not hours:
            return []
        t = np.asarray(hours, dtype=np.int64)
        key = _key(self.seed, inst.name, "funding")
        premium = value_noise(key, _PREMIUM_OCTAVES, t) + 0.0001 * _unit(_key(key, "jit"), t)
        jitter = ((_unit(_key(key, "ms"), t) + 1.0) * 240).astype(np.int64) + 5
        out = []
        for hour, prem, ms in zip(hours, premium.tolist(), jitter.tolist(), strict=True):
            per_hour = hour >= HOURLY_FUNDING_FROM_MS
            prem_units = round(prem * 1e10)  # the API prints up to 10 decimals
            interest = 1_000_000  # 0.01 % per 8 h, in 1e-10 units
            clamp = max(-5_000_000, min(5_000_000, interest - prem_units))
            rate_units = prem_units + clamp
            if per_hour:
                rate_units = rate_units // 8
            out.append(Funding(hour, hour + ms, format_decimal(rate_units, 10),
                               format_decimal(prem_units, 10)))
        return out


def format_decimal(units: int, decimals: int, integral_suffix: str = "") -> str:
    """``units * 10**-decimals`` as a plain decimal string without trailing zeros
    (and never an exponent): the shape of every number on Hyperliquid's wire."""
    sign = "-" if units < 0 else ""
    units = abs(units)
    if decimals == 0:
        return f"{sign}{units}{integral_suffix}"
    whole, frac = divmod(units, 10**decimals)
    frac_text = f"{frac:0{decimals}d}".rstrip("0")
    if not frac_text:
        return f"{sign}{whole}{integral_suffix}"
    return f"{sign}{whole}.{frac_text}"
