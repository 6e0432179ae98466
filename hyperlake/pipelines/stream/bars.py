"""Trades → closed OHLCV bars of every requested interval, exactly as the exchange has them.

One aggregator serves all intervals and coins. Rules (each one is what makes a bar
equal the exchange's REST candle of the same bucket):

- A trade belongs to the bucket of its **exchange** time (``time``), never to when it
  arrived; o/c are the px of the first/last trade by (time, tid), h/l the max/min px,
  v the exact sum of sizes (integers of 10**-8, converted once), n the count, q null
  (the exchange's native candle has no quote volume).
- A bar closes at a **wall-clock deadline**, bucket end + grace, read from the
  caller's clock (``now_ms`` passed to :meth:`BarAggregator.close_due`), not when the
  next trade happens to arrive. A bucket without trades has no bar: nothing is
  invented.
- A trade for a bar already closed is a *late trade*: it is applied and the bar is
  emitted again, corrected, as a later version of the same key (a ``revision`` one
  higher and a ``fetched_at`` strictly later, so compaction keeps it).
- Memory is bounded: a closed bucket is kept for a retention window past its
  deadline to absorb late trades, then dropped; a trade for a dropped bucket is
  *too late*: counted per interval, never applied (the streamer repairs such bars
  from REST). What is held is the open buckets plus ``(grace + retention) / step``
  closed buckets per coin and interval, whatever the uptime.

Speed: a frame's trades are aggregated as a batch. Sorted by time (as the server sends
them), a frame's part of one bucket is a contiguous slice whose h/l/v/n come from
C-level ``max``/``min``/``sum``, and o/c from its ends; per trade, nothing is done in
Python at all. Most frames fall in one bucket of every interval: their summary is
made once, merged into the finest interval's bucket and, while the coin's frames stay
within one bucket of every coarser interval, into one running *carry* that reaches
those buckets only when a frame leaves them or one of them is about to close
(:class:`_Carry`); a frame across buckets is summarised once per slice. A bucket is a
list of numbers (no tuples inside for the garbage collector to follow), and the
buckets of one open time across coins form a *generation* that closes and is dropped
as one: one heap entry per open time, not per bar.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from functools import partial
from heapq import heappop, heappush
from typing import Any, NamedTuple

from hyperlake.pipelines.stream.trades import (
    PLAIN_SUM_LIMIT,
    SIZE_SCALE,
    Summary,
    TradeBatch,
    size_units,
)
from hyperlake.schemas.candles import CandleRow
from hyperlake.schemas.intervals import (
    FIXED_STEP_MS,
    MINUTE_MS,
    bucket_start,
    is_interval,
    next_bucket,
)

#: How long a closed bucket stays correctable by late trades, past its deadline.
DEFAULT_RETENTION_MS = 5 * MINUTE_MS


class Bar(NamedTuple):
    """One emitted bar: ``row`` is ready for ``candle_table(coin, interval, …)``."""

    coin: str
    interval: str
    row: CandleRow
    revision: int  # 0: first emission; k: k-th correction by late trades


#: The running state of one bar: a summary's ten fields (as a list, in that order:
#: built from a summary in one C call, updated in place), then its emissions so far
#: minus one and the ``fetched_at`` of the last one: [0] opening time, [1] its tid,
#: [2] o, [3] closing time, [4] its tid, [5] c, [6] h, [7] l, [8] units, [9] n,
#: [10] revision, [11] stamped. Index constants would cost a global lookup each on
#: the hot path, so _merge and emit spell the indices.
_Bucket = list[Any]
_REVISION, _STAMPED = 10, 11
#: A bucket's key, as dirty and missed sets hold it.
_Key = tuple[int, str]  # (open ms, coin)

_new_row = partial(tuple.__new__, CandleRow)  # CandleRow(...) without its Python __new__
_new_bar = partial(tuple.__new__, Bar)


def _bucket(part: Summary) -> _Bucket:
    return [*part, -1, -1]  # not emitted yet; stamped before any clock


def _merge(bucket: _Bucket, part: Summary | _Bucket) -> None:
    """Fold a summary (or a carry's part: the same ten fields) into a bucket: o and c
    from the least and greatest (time, tid)."""
    first, first_tid, o, last, last_tid, c, high, low, units, n = part
    if first < bucket[0] or (first == bucket[0] and first_tid < bucket[1]):
        bucket[0] = first
        bucket[1] = first_tid
        bucket[2] = o
    if last > bucket[3] or (last == bucket[3] and last_tid > bucket[4]):
        bucket[3] = last
        bucket[4] = last_tid
        bucket[5] = c
    if high > bucket[6]:
        bucket[6] = high
    if low < bucket[7]:
        bucket[7] = low
    bucket[8] += units
    bucket[9] += n


class _Book:
    """The buckets of one interval, for every coin.

    Two watermarks split bucket opens into open (≥ ``closed_before``), closed but kept
    for late trades (≥ ``dropped_before``) and forgotten. ``opens`` maps each open
    time of the first two kinds to its buckets by coin (a *generation*: they close
    and are dropped together); ``pending`` (open) and ``kept`` (closed) are heaps of
    those open times, so closing and dropping take the oldest first without scanning
    anything, once per generation rather than once per coin."""

    __slots__ = ("close_at", "closed_before", "dirty", "drop_at", "dropped_before",
                 "interval", "kept", "late", "missed", "offset", "opens", "pending", "step",
                 "too_late")

    def __init__(self, interval: str, closed_before: int, dropped_before: int) -> None:
        self.interval = interval
        # Fixed steps bucket inline: start = ms - (ms - offset) % step, the same as
        # intervals.bucket_start (offset: 1w opens on Mondays); 1M has step 0.
        self.step = FIXED_STEP_MS.get(interval, 0)
        self.offset = bucket_start(0, interval) % self.step if self.step else 0
        self.closed_before = closed_before
        self.dropped_before = dropped_before
        # when each watermark moves: once now - grace (- retention) reaches the end of
        # the bucket it names
        self.close_at = self.end(closed_before)
        self.drop_at = self.end(dropped_before)
        self.opens: dict[int, dict[str, _Bucket]] = {}
        self.pending: list[int] = []
        self.kept: list[int] = []
        self.dirty: set[_Key] = set()  # closed buckets changed by late trades
        self.late = 0
        self.too_late = 0
        self.missed: set[_Key] = set()  # dropped buckets a too-late trade belonged to

    def start(self, ms: int) -> int:
        """Open time of the bucket holding ``ms`` (intervals.bucket_start, inlined)."""
        step = self.step
        return ms - (ms - self.offset) % step if step else bucket_start(ms, self.interval)

    def end(self, open_ms: int) -> int:
        """Open time of the next bucket (intervals.next_bucket, inlined)."""
        return open_ms + self.step if self.step else next_bucket(open_ms, self.interval)

    def merge(self, coin: str, open_ms: int, part: Summary) -> None:
        """Fold ``part`` into the bucket of (``open_ms``, ``coin``): open, closed (a
        late trade: re-emitted) or dropped (too late: counted, not applied)."""
        if open_ms < self.closed_before:
            if open_ms < self.dropped_before:
                self.too_late += part[9]
                self.missed.add((open_ms, coin))
                return
            self.late += part[9]
            self.dirty.add((open_ms, coin))
        generation = self.opens.get(open_ms)
        if generation is None:
            generation = self.opens[open_ms] = {}
            heappush(self.pending if open_ms >= self.closed_before else self.kept, open_ms)
        bucket = generation.get(coin)
        if bucket is None:
            generation[coin] = _bucket(part)
        else:
            _merge(bucket, part)

    def fold(self, coin: str, batch: TradeBatch, part: Summary | None) -> Summary:
        """Apply a time-sorted batch; returns the whole batch's summary (``part``: the
        summary already made, if any). The usual batch lies in one open bucket:
        summarised once, merged right here; anything else (a batch across a boundary,
        a late one, months) goes by way of add_slices."""
        step = self.step
        if step:
            times = batch.times
            first_ms = times[0]
            open_ms = first_ms - (first_ms - self.offset) % step
            if times[-1] < open_ms + step and open_ms >= self.closed_before:
                if part is None:
                    part = _summarise(batch, 0, len(times))
                generation = self.opens.get(open_ms)
                if generation is None:  # (a new bucket: [*part, -1, -1] is _bucket inlined)
                    self.opens[open_ms] = {coin: [*part, -1, -1]}
                    heappush(self.pending, open_ms)
                elif (bucket := generation.get(coin)) is None:
                    generation[coin] = [*part, -1, -1]
                else:
                    _merge(bucket, part)
                return part
        return self.add_slices(coin, batch, part)

    def add_slices(self, coin: str, batch: TradeBatch, part: Summary | None) -> Summary:
        """Trades of a time-sorted batch, which may span several buckets: one slice
        each, merged whatever the bucket's state. Returns the whole batch's summary
        (``part`` if given, else the slices' summaries put together)."""
        times = batch.times
        count, lo = len(times), 0
        whole = part
        while lo < count:
            open_ms = self.start(times[lo])
            hi = bisect_left(times, self.end(open_ms), lo)
            piece = _summarise(batch, lo, hi)
            self.merge(coin, open_ms, piece)
            if part is None:
                whole = piece if whole is None else _joined(whole, piece)
            lo = hi
        assert whole is not None  # a batch is never empty here
        return whole

    def close(self, closing: int, now_ms: int, out: list[Bar]) -> None:
        """Close the open buckets that end by ``closing`` (now - grace); emit them."""
        if closing < self.close_at:
            return
        closed_before = self.closed_before = self.start(closing)
        self.close_at = self.end(closed_before)
        pending = self.pending
        while pending and pending[0] < closed_before:
            open_ms = heappop(pending)
            heappush(self.kept, open_ms)
            generation = self.opens[open_ms]
            close_ms = self.end(open_ms) - 1
            for coin in sorted(generation):
                out.append(self.emit(coin, open_ms, close_ms, generation[coin], now_ms))

    def correct(self, now_ms: int, out: list[Bar]) -> None:
        """Emit again the closed buckets late trades changed."""
        for open_ms, coin in sorted(self.dirty):
            out.append(self.emit(coin, open_ms, self.end(open_ms) - 1,
                                 self.opens[open_ms][coin], now_ms))
        self.dirty.clear()

    def emit(self, coin: str, open_ms: int, close_ms: int, bucket: _Bucket,
             now_ms: int) -> Bar:
        """The closed bar of a bucket: its next revision, stamped after the last one."""
        revision = bucket[_REVISION] = bucket[_REVISION] + 1
        stamped = bucket[_STAMPED]
        stamped = bucket[_STAMPED] = now_ms if now_ms > stamped else stamped + 1
        row = _new_row((open_ms, close_ms, bucket[2], bucket[6], bucket[7], bucket[5],
                        bucket[8] / SIZE_SCALE, None, bucket[9], True, stamped))
        return _new_bar((coin, self.interval, row, revision))

    def drop(self, dropping: int) -> None:
        """Forget the closed buckets that end by ``dropping`` (now - grace - retention)."""
        if dropping < self.drop_at:
            return
        dropped_before = self.dropped_before = self.start(dropping)
        self.drop_at = self.end(dropped_before)
        kept = self.kept
        while kept and kept[0] < dropped_before:
            del self.opens[heappop(kept)]

    def open_bars(self, now_ms: int) -> list[Bar]:
        """The open buckets as bars (``x`` false, ``fetched_at`` ``now_ms``)."""
        out = []
        for open_ms in sorted(self.pending):
            generation, close_ms = self.opens[open_ms], self.end(open_ms) - 1
            for coin in sorted(generation):
                _, _, o, _, _, c, h, low, units, n = generation[coin][:_REVISION]
                row = CandleRow(open_ms, close_ms, o, h, low, c, units / SIZE_SCALE, None, n,
                                False, now_ms)
                out.append(Bar(coin, self.interval, row, 0))
        return out

    def next_change(self, grace_ms: int, retention_ms: int) -> int:
        """The earliest clock at which either watermark moves."""
        return min(self.close_at + grace_ms, self.drop_at + grace_ms + retention_ms)


class _Carry:
    """A coin's trades not yet folded into its open buckets of the coarser intervals.

    While a coin's frames fall within one bucket of every coarser interval (the
    *window*: the intersection of those buckets, all open), each frame's summary is
    merged here once instead of into each of them; the sum goes into every one of
    them when a frame falls outside the window, and before anything reads them
    (closing a coarser bucket, the open bars). Merging is associative and
    commutative (o/c by the least/greatest (time, tid), h/l by max/min, v and n by
    sums), so the bars are the same as if each frame had been merged into each."""

    __slots__ = ("buckets", "end", "part", "start")

    def __init__(self, start: int, end: int, buckets: list[_Bucket]) -> None:
        self.start, self.end = start, end  # the window [start, end)
        self.buckets = buckets
        self.part: _Bucket | None = None  # the trades carried, as a summary's fields

    def flush(self) -> None:
        """Fold what is carried into the buckets; the window stays."""
        if self.part is not None:
            for bucket in self.buckets:
                _merge(bucket, self.part)
            self.part = None


class BarAggregator:
    """Bars of ``intervals`` for every coin fed to :meth:`add`; see the module docstring.

    ``start_ms`` is the caller's clock at start: buckets whose deadline has already
    passed are closed from the outset (a trade for one is late), and those past the
    retention window too late."""

    def __init__(self, intervals: Iterable[str], *, grace_ms: int, start_ms: int,
                 retention_ms: int = DEFAULT_RETENTION_MS) -> None:
        names = list(dict.fromkeys(intervals))
        unknown = [name for name in names if not is_interval(name)]
        if unknown or not names:
            raise ValueError(f"not candle intervals: {unknown or names}")
        if grace_ms < 0 or retention_ms < 0:
            raise ValueError("grace and retention cannot be negative")
        self.grace_ms = grace_ms
        self.retention_ms = retention_ms
        self._books = [_Book(name, bucket_start(start_ms - grace_ms, name),
                             bucket_start(start_ms - grace_ms - retention_ms, name))
                       for name in names]
        # The finest interval takes every frame itself (its bucket changes about as
        # often as frames come); the others take theirs through a per-coin _Carry.
        finest = min(self._books, key=lambda book: book.step or 1 << 62)
        self._coarse = [book for book in self._books if book is not finest]
        self._finest = finest
        self._carries: dict[str, _Carry] = {}
        self._wake_ms = self._next_wake()

    @property
    def intervals(self) -> list[str]:
        return [book.interval for book in self._books]

    # -- feeding --------------------------------------------------------------------

    def add(self, batch: TradeBatch) -> None:
        """Apply one frame's (deduplicated) trades to every interval's buckets: the
        finest interval's directly, the others' through the coin's carry (_Carry)
        while the frame lies within its window."""
        times = batch.times
        if not times:
            return
        if not batch.ordered:
            batch = _in_time_order(batch)
            times = batch.times
        coin = batch.coin
        part = self._finest.fold(coin, batch, batch.summary)
        if not self._coarse:
            return
        carry = self._carries.get(coin)
        if carry is not None:
            if carry.start <= times[0] and times[-1] < carry.end:
                if carry.part is None:
                    carry.part = list(part)
                else:
                    _merge(carry.part, part)
                return
            carry.flush()
            del self._carries[coin]
        for book in self._coarse:
            part = book.fold(coin, batch, part)
        self._open_carry(coin, times[-1])

    def _open_carry(self, coin: str, ms: int) -> None:
        """A carry for ``coin`` over its coarser buckets holding ``ms`` (which exist:
        a trade at ``ms`` was just merged), if all are open."""
        buckets, start, end = [], 0, 1 << 62
        for book in self._coarse:
            open_ms = book.start(ms)
            if open_ms < book.closed_before:
                return
            buckets.append(book.opens[open_ms][coin])
            start, end = max(start, open_ms), min(end, book.end(open_ms))
        self._carries[coin] = _Carry(start, end, buckets)

    def _flush_carries(self) -> None:
        for carry in self._carries.values():
            carry.flush()

    # -- emitting -------------------------------------------------------------------

    def close_due(self, now_ms: int) -> list[Bar]:
        """Bars whose deadline (bucket end + grace) is at or before ``now_ms``, closed
        now, then the corrections late trades made to bars closed before; buckets past
        the retention window are dropped. ``fetched_at`` is ``now_ms`` (or one past a
        bar's previous emission, should the clock step back)."""
        books = self._books
        if now_ms < self._wake_ms:
            for book in books:
                if book.dirty:
                    break
            else:
                return []  # no watermark moves yet: the usual answer to a frequent poll
        bars: list[Bar] = []
        closing, dropping = now_ms - self.grace_ms, now_ms - self.grace_ms - self.retention_ms
        if any(closing >= book.close_at for book in self._coarse):
            self._flush_carries()  # a coarser bucket may close: its bar needs them all
            self._carries.clear()
        for book in books:
            book.close(closing, now_ms, bars)
            if book.dirty:
                book.correct(now_ms, bars)
            book.drop(dropping)
        self._wake_ms = self._next_wake()
        return bars

    def _next_wake(self) -> int:
        return min(book.next_change(self.grace_ms, self.retention_ms) for book in self._books)

    def open_bars(self, now_ms: int) -> list[Bar]:
        """The bars not closed yet (``x`` false, ``fetched_at`` ``now_ms``), for a live
        view or a flush on shutdown; they stay open here."""
        self._flush_carries()
        return [bar for book in self._books for bar in book.open_bars(now_ms)]

    def next_deadline(self) -> int | None:
        """The earliest deadline among open buckets (when :meth:`close_due` will next
        have a bar to close); None when nothing is open."""
        deadlines = [book.end(book.pending[0]) + self.grace_ms
                     for book in self._books if book.pending]
        return min(deadlines, default=None)

    # -- health ---------------------------------------------------------------------

    @property
    def late_trades(self) -> dict[str, int]:
        """Per interval: trades applied to a bar after it had closed."""
        return {book.interval: book.late for book in self._books}

    @property
    def too_late_trades(self) -> dict[str, int]:
        """Per interval: trades for a bucket already dropped (not applied)."""
        return {book.interval: book.too_late for book in self._books}

    def take_missed(self) -> list[tuple[str, str, int]]:
        """(coin, interval, open ms) of the dropped buckets that too-late trades belonged
        to, since the last call: their bars lack those trades (repair them from REST)."""
        out = [(coin, book.interval, open_ms) for book in self._books
               for open_ms, coin in sorted(book.missed)]
        for book in self._books:
            book.missed.clear()
        return out

    def held_buckets(self) -> int:
        """Buckets in memory, open and closed (what the retention bound is about)."""
        return sum(len(generation) for book in self._books
                   for generation in book.opens.values())


def _in_time_order(batch: TradeBatch) -> TradeBatch:
    times, tids = batch.times, batch.tids
    return batch.select(sorted(range(len(times)), key=lambda i: (times[i], tids[i])))


def _summarise(batch: TradeBatch, lo: int, hi: int) -> Summary:
    """The summary of trades [lo, hi) of a batch sorted by time; among trades of equal
    time, the lowest tid opens and the highest closes."""
    times, tids, px = batch.times, batch.tids, batch.px
    exact = batch.units
    if hi - lo == 1:  # a lone trade
        time, tid, price = times[lo], tids[lo], px[lo]
        units = round(batch.sz[lo] * SIZE_SCALE) if exact is None else exact[lo]
        return time, tid, price, time, tid, price, price, price, units, 1
    if lo == 0 and hi == len(times):
        prices, ids, total = px, tids, batch.total
    else:
        prices, ids = px[lo:hi], tids[lo:hi]
        total = sum(batch.sz[lo:hi])
    if exact is not None:
        units = sum(exact[lo:hi])
    elif total * (hi - lo + 2) < PLAIN_SUM_LIMIT:  # size_units' first case, inlined
        units = round(total * SIZE_SCALE)
    else:
        units = size_units(batch.sz[lo:hi])
    time, end_time = times[lo], times[hi - 1]
    if time == end_time:  # one block of trades at one time (a frame often is one)
        first, last = lo + ids.index(min(ids)), lo + ids.index(max(ids))
    else:
        if times[lo + 1] != time:
            first = lo
        else:  # a block at the start: the lowest tid among its trades opens
            group = tids[lo:bisect_right(times, time, lo, hi)]
            first = lo + group.index(min(group))
        if times[hi - 2] != end_time:
            last = hi - 1
        else:  # and the highest among those of the block at the end closes
            start = bisect_left(times, end_time, lo, hi)
            group = tids[start:hi]
            last = start + group.index(max(group))
    return (time, tids[first], px[first], end_time, tids[last], px[last], max(prices),
            min(prices), units, hi - lo)


def _joined(earlier: Summary, later: Summary) -> Summary:
    """The summary of two consecutive slices of a time-sorted batch (every trade of
    ``later`` after every trade of ``earlier``)."""
    return (earlier[0], earlier[1], earlier[2], later[3], later[4], later[5],
            max(earlier[6], later[6]), min(earlier[7], later[7]), earlier[8] + later[8],
            earlier[9] + later[9])
