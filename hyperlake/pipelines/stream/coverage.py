"""Which stretches of each coin's trades this stream has seen in full.

A bar is exact only if every trade of its bucket reached us. While a subscription is
up, the server sends a coin's trades in exchange-time order, so everything is seen;
across a disconnect (or a stale connection, or the start of a run) something may be
missed. Per coin this module keeps the spans of exchange time known complete:

- a subscription opens a span at the moment it is acknowledged (trades after that are
  delivered live);
- the replay the server sends right after (the coin's ~30 most recent trades; none
  when it has no recent trade) stretches it back: to the first replayed trade — or,
  when the replay repeats a trade already seen (the deduper says so), all the way back
  to the previous span, which then simply goes on: nothing was missed;
- losing the connection ends the span at what is surely seen: the latest of the last
  trade's time and the last frame's arrival minus the grace (trades arrive in order,
  within the grace, or are late anyway).

A bucket lying wholly inside a span is certain: its bar (or its emptiness) is written.
Any other bucket is uncertain and is repaired from REST instead (``stream.session``).
Pure: every instant is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hyperlake.lake.ranges import RangeSet, Span


@dataclass
class _Coin:
    spans: list[Span] = field(default_factory=list)  # closed spans, in order
    open_from: int | None = None  # start of the span still growing (subscribed)
    awaiting_replay: bool = False  # subscribed; the next trades frame is the replay
    last_trade_ms: int | None = None


class Coverage:
    def __init__(self, grace_ms: int) -> None:
        self.grace_ms = grace_ms
        self._coins: dict[str, _Coin] = {}

    def _coin(self, coin: str) -> _Coin:
        return self._coins.setdefault(coin, _Coin())

    def subscribed(self, coin: str, now_ms: int) -> None:
        """The server acknowledged the subscription: trades from now on arrive."""
        state = self._coin(coin)
        if state.open_from is None:
            state.open_from = now_ms
        state.awaiting_replay = True

    def replayed(self, coin: str, earliest_ms: int | None, overlapped: bool) -> None:
        """The replay after a subscribe: its first trade's time (None: it was empty),
        and whether it repeated a trade seen before (then the previous span goes on)."""
        state = self._coin(coin)
        if not state.awaiting_replay or state.open_from is None:
            return
        state.awaiting_replay = False
        if overlapped and state.spans:
            state.open_from = state.spans.pop().start
        elif earliest_ms is not None:
            # Everything after the first replayed trade is known (replay, then live);
            # what came before it is not — nor trades at that very instant with lower
            # ids — whatever our clock said at the acknowledgement.
            state.open_from = earliest_ms + 1

    def traded(self, coin: str, latest_ms: int) -> None:
        state = self._coin(coin)
        if state.last_trade_ms is None or latest_ms > state.last_trade_ms:
            state.last_trade_ms = latest_ms

    def lost(self, coin: str, last_frame_ms: int) -> None:
        """The connection carrying ``coin`` died (or went stale): close its span."""
        state = self._coin(coin)
        if state.open_from is None:
            return
        end = last_frame_ms - self.grace_ms
        if state.last_trade_ms is not None:
            end = max(end, state.last_trade_ms)
        if end > state.open_from:
            state.spans.append(Span(state.open_from, end))
        state.open_from = None
        state.awaiting_replay = False

    def certain(self, coin: str, now_ms: int) -> RangeSet:
        """The spans of exchange time whose trades were all seen, up to ``now_ms``
        minus the grace for the one still growing."""
        state = self._coins.get(coin)
        if state is None:
            return RangeSet()
        spans = list(state.spans)
        if state.open_from is not None:
            end = now_ms - self.grace_ms
            if end > state.open_from:
                spans.append(Span(state.open_from, end))
        return RangeSet(spans)

    def forget_before(self, coin: str, ms: int) -> None:
        """Drop closed spans that end before ``ms`` (already decided): memory stays flat."""
        state = self._coins.get(coin)
        if state is not None:
            state.spans = [s for s in state.spans if s.end > ms]
