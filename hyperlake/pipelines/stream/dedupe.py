"""Drop trades already counted, by ``tid``, with memory bounded by exchange time.

After every (re)subscribe the server replays the coin's most recent trades (~30)
before live ones, and a resend can repeat a frame: neither may be counted twice.
``tid`` is unique across assets, so a set of seen ids would do, except that it grows
forever. The deduper therefore remembers, per coin, the ids of the trades admitted
within a *horizon* H of exchange time behind the newest trade admitted for that coin
(its high-water mark W), and refuses anything older than ``W - H`` as *stale*.

Why that is exact:

- No trade is counted twice. A trade is admitted only if its id is not remembered and
  its time is ≥ W - H. Ids are forgotten by whole frames, and only once the newest
  time admitted up to and including the frame (its key, ≥ each of its trades'
  times) has fallen below W - H; so every admitted trade whose time is still ≥ W - H
  is still remembered, and a second copy of it is refused.
- No trade that should count is refused, given how the feed behaves: the server sends
  a coin's trades in exchange-time order, so the only trades that arrive behind the
  newest one already seen are re-sends (the replay covers the last ~30 trades, and a
  second connection carrying the same coin during a reconnect lags by seconds, far
  less than H). A trade that the server held back for longer than H would be refused
  and counted in :attr:`TradeDeduper.stale`, where the health report shows it; the
  streamer repairs the bar from REST as it does for any gap.

Bound: per coin, the ids admitted while W advanced through the last H (plus H/8: ids
are forgotten in batches, once the oldest frame is that far behind), i.e. at most the
coin's trades in a window of 2H + H/8, whatever the uptime; in-order feeds keep about
H + H/8 of them. An idle coin keeps its last window and does not grow. The default H
(5 minutes) equals the aggregator's retention window
(:data:`hyperlake.pipelines.stream.bars.DEFAULT_RETENTION_MS`): any trade the
aggregator could still apply to a closed 1 s … 5 m bar is checked against every id
seen in that time.

Speed: the usual frame is wholly newer than W, and then nothing is looked up (a copy
has its original's time, so it cannot repeat a trade admitted before): the frame is
only checked for an id twice within it, and its ids are appended to the coin's flat
list. A frame reaching back to W or before (a replay, a resend, a block split over two
frames) is checked against the ids of the frames whose key is ≥ its earliest time
(any copy's original was admitted by one of them): for a replay, the last few frames.

The memory is this process's: after a restart, the replay that follows the first
subscribe is new to it, though bars written before the restart may hold those trades.
The streamer must not let such bars be rewritten from a partial replay (it repairs
the span around a restart from REST, like any other gap).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hyperlake.pipelines.stream.trades import TradeBatch
from hyperlake.schemas.intervals import MINUTE_MS

DEFAULT_HORIZON_MS = 5 * MINUTE_MS


@dataclass(slots=True)
class _CoinMemory:
    newest: int = -(1 << 62)  # W: newest exchange time admitted (none yet: admit all)
    # The admitted ids in admission order and, per frame, its key (W right after it
    # was admitted) and how many ids it added: the keys never decrease, so eviction
    # takes from the left. Flat lists of ints, not a list or tuple per frame: appending
    # is a C copy, and the garbage collector has nothing new to look at.
    ids: list[int] = field(default_factory=list)
    keys: deque[int] = field(default_factory=deque)
    counts: deque[int] = field(default_factory=deque)

    def ids_since(self, earliest: int) -> set[int]:
        """The remembered ids a trade at ``earliest`` or later can repeat: those of the
        frames whose key is ≥ ``earliest`` (a copy has its original's time, and a
        frame's key is ≥ every time in it), newest first, so a replay of the last
        trades reads only the last few frames."""
        count = 0
        for key, added in zip(reversed(self.keys), reversed(self.counts), strict=True):
            if key < earliest:
                break
            count += added
        ids = self.ids
        return set(ids[len(ids) - count:])

    def forget_before(self, floor: int) -> None:
        """Forget the frames whose key is below ``floor``."""
        keys, counts, count = self.keys, self.counts, 0
        while keys[0] < floor:
            keys.popleft()
            count += counts.popleft()
        del self.ids[:count]


class TradeDeduper:
    """Admit each trade once; see the module docstring for the bound and why it is safe."""

    def __init__(self, horizon_ms: int = DEFAULT_HORIZON_MS) -> None:
        if horizon_ms <= 0:
            raise ValueError("the dedupe horizon must be positive")
        self.horizon_ms = horizon_ms
        self._slack_ms = horizon_ms // 8
        self.duplicates = 0  # refused: the id was admitted before
        self.stale = 0  # refused: older than the horizon behind the coin's newest trade
        self._coins: dict[str, _CoinMemory] = {}

    def admit(self, batch: TradeBatch) -> TradeBatch:
        """The trades of ``batch`` not admitted before, in frame order (the batch
        itself when all are new). A frame wholly newer than the coin's newest trade
        cannot repeat anything seen (a copy has its original's time), so the usual
        case looks nothing up: it only checks that no id comes twice in the frame."""
        tids = batch.tids
        if not tids:
            return batch
        memory = self._coins.get(batch.coin)
        if memory is None:
            memory = self._coins[batch.coin] = _CoinMemory()
        newest = memory.newest
        if batch.ordered:
            earliest, latest = batch.times[0], batch.times[-1]
        else:
            earliest, latest = min(batch.times), max(batch.times)
        count = len(tids)
        if earliest > newest and (batch.distinct or len(set(tids)) == count):
            kept = batch  # all new
        else:
            kept = self._filter(batch, memory.ids_since(earliest), newest - self.horizon_ms)
            if not kept:
                return kept
            latest, count = kept.latest, len(kept.tids)
        # remember the frame's ids; forget, in batches, those fallen behind the horizon
        if latest > newest:
            memory.newest = newest = latest
        memory.ids += kept.tids
        keys = memory.keys
        keys.append(newest)
        memory.counts.append(count)
        if keys[0] < newest - self.horizon_ms - self._slack_ms:
            memory.forget_before(newest - self.horizon_ms)
        return kept

    def _filter(self, batch: TradeBatch, seen: set[int], floor: int) -> TradeBatch:
        """The trades of ``batch`` neither stale (before ``floor``) nor in ``seen``
        nor earlier in the frame."""
        tids = batch.tids
        if (seen.isdisjoint(tids) and min(batch.times) >= floor
                and len(set(tids)) == len(tids)):
            return batch  # overlaps in time only (a block split over two frames)
        keep: list[int] = []
        taken: set[int] = set()
        for index, (tid, time) in enumerate(zip(tids, batch.times, strict=True)):
            if time < floor:
                self.stale += 1
            elif tid in seen or tid in taken:
                self.duplicates += 1
            else:
                keep.append(index)
                taken.add(tid)
        return batch.select(keep)

    def remembered(self) -> int:
        """How many trade ids are held (the memory the bound is about)."""
        return sum(len(memory.ids) for memory in self._coins.values())
