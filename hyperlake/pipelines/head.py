"""Where a source's data ends, and which of its answers near there are not final yet.

An answer about a bucket near the head of a source's data can change: an index may
not have ingested the last minutes yet, and a source whose clock is behind ours
still has open candles (and no candles at all) for buckets our clock says are over.
Trusted blindly, such answers turn real candles into permanent holes ("confirmed
empty") and open candles into closed ones with partial values. So every answer is
judged against a ``Head``:

- the head is the earlier of two clocks: ours, and the source's own (the ``Date``
  header of the very answer); a source behind us decides;
- a candle the source marks closed (``x``) is final;
- a candle without a closed flag (Hyperliquid's native ones) is closed only when its
  bucket ended before the head; a candle not closed is provisional (not stored);
- an empty bucket (no candle, Dwellir's 404, no funding row) is confirmed only when it
  ended at least the settle window before the head; otherwise it is provisional.

Provisional spans go to the series' provisional ledger (``lake.ledger``): the next
run asks again, and only then does the answer become final. A gross difference
between the two clocks is reported (``Counters.clock_skew_ms``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hyperlake.lake.ledger import Failure
from hyperlake.lake.ranges import Span
from hyperlake.schemas.intervals import bucket_start, next_bucket

#: Clocks further apart than this are reported (the Date header has 1 s resolution).
GROSS_SKEW_MS = 60_000
#: Why a span is provisional, as the ledger records it.
NOT_SETTLED = "empty near the head of the source's data"
NOT_CLOSED = "candle not closed yet"


@dataclass(frozen=True)
class Head:
    client_ms: int  # our clock
    source_ms: int | None  # the source's clock (its Date header), when it sent one
    settle_ms: int  # how long after a bucket ends an empty answer is trusted

    @property
    def now_ms(self) -> int:
        """The earlier clock: what the source can have answered for good by now."""
        return self.client_ms if self.source_ms is None else min(self.client_ms, self.source_ms)

    @property
    def settle_line(self) -> int:
        """Buckets that end at or before this are settled."""
        return self.now_ms - self.settle_ms

    def closed(self, t_close: int) -> bool:
        """Whether a candle without a closed flag, closing at ``t_close``, is closed."""
        return t_close < self.now_ms

    @property
    def skew_ms(self) -> int:
        """How far our clock is ahead of the source's (negative: behind); 0 unknown."""
        return 0 if self.source_ms is None else self.client_ms - self.source_ms


def unsettled_empties(span: Span, interval: str, head: Head,
                      answered: Iterable[int]) -> list[Failure]:
    """The buckets of ``span`` that end after the settle line and hold no answer (no
    final row, no provisional candle), as merged provisional spans."""
    line = head.settle_line
    if span.end <= line:
        return []
    held = set(answered)
    out: list[Failure] = []
    t = max(span.start, bucket_start(line, interval))  # the bucket holding the line
    while t < span.end:
        end = next_bucket(t, interval)
        if end > line and t not in held:
            if out and out[-1].span.end == t:
                out[-1] = Failure(Span(out[-1].span.start, end), NOT_SETTLED)
            else:
                out.append(Failure(Span(t, end), NOT_SETTLED))
        t = end
    return out


def merged(entries: Iterable[Failure]) -> list[Failure]:
    """Entries sorted, adjacent ones with the same reason joined."""
    out: list[Failure] = []
    for entry in sorted(entries, key=lambda e: e.span):
        last = out[-1] if out else None
        if last is not None and last.span.end == entry.span.start and \
                last.reason == entry.reason:
            out[-1] = Failure(Span(last.span.start, entry.span.end), entry.reason)
        else:
            out.append(entry)
    return out


def larger_skew(a: int, b: int) -> int:
    """The skew further from zero (what a run reports of several answers)."""
    return a if abs(a) >= abs(b) else b
