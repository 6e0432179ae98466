"""Half-open millisecond ranges and sets of them: the arithmetic of coverage."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hyperlake.schemas.intervals import count_buckets


@dataclass(frozen=True, order=True)
class Span:
    """[start, end) in epoch milliseconds."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"span ends before it starts: {self.start} > {self.end}")

    def __len__(self) -> int:
        return self.end - self.start

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


class RangeSet:
    """A normalised (sorted, disjoint, non-adjacent) set of spans."""

    def __init__(self, spans: Iterable[Span] = ()) -> None:
        self.spans: tuple[Span, ...] = _normalise(spans)

    def __iter__(self) -> Iterator[Span]:
        return iter(self.spans)

    def __bool__(self) -> bool:
        return bool(self.spans)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeSet) and self.spans == other.spans

    def __repr__(self) -> str:
        return f"RangeSet({list(self.spans)})"

    def total(self) -> int:
        return sum(len(s) for s in self.spans)

    def union(self, other: RangeSet) -> RangeSet:
        return RangeSet((*self.spans, *other.spans))

    def subtract(self, other: RangeSet) -> RangeSet:
        out: list[Span] = []
        cuts = other.spans
        for span in self.spans:
            pieces = [span]
            for cut in cuts:
                if cut.start >= span.end:
                    break
                pieces = [p for piece in pieces for p in _minus(piece, cut)]
            out.extend(pieces)
        return RangeSet(out)

    def intersect(self, other: RangeSet) -> RangeSet:
        out: list[Span] = []
        for a in self.spans:
            for b in other.spans:
                start, end = max(a.start, b.start), min(a.end, b.end)
                if start < end:
                    out.append(Span(start, end))
        return RangeSet(out)

    def contains(self, span: Span) -> bool:
        return any(s.start <= span.start and span.end <= s.end for s in self.spans)


def _minus(span: Span, cut: Span) -> list[Span]:
    if not span.overlaps(cut):
        return [span]
    pieces = []
    if span.start < cut.start:
        pieces.append(Span(span.start, cut.start))
    if cut.end < span.end:
        pieces.append(Span(cut.end, span.end))
    return pieces


def _normalise(spans: Iterable[Span]) -> tuple[Span, ...]:
    ordered = sorted(s for s in spans if s.end > s.start)
    merged: list[Span] = []
    for span in ordered:
        if merged and span.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = Span(last.start, max(last.end, span.end))
        else:
            merged.append(span)
    return tuple(merged)


def buckets_in(spans: Iterable[Span], interval: str) -> int:
    """Buckets of ``interval`` opening in the spans."""
    return sum(count_buckets(s.start, s.end, interval) for s in spans)
