"""Span and RangeSet arithmetic, checked against brute-force sets of integers."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperlake.lake.ranges import RangeSet, Span

#: Examples are microseconds of work; a loaded CI machine must not fail them on time.
NO_DEADLINE = settings(deadline=None)

span_st = st.builds(lambda start, length: Span(start, start + length),
                    st.integers(0, 60), st.integers(0, 12))
spans_st = st.lists(span_st, max_size=8)


def points(spans: Iterable[Span]) -> set[int]:
    return {i for span in spans for i in range(span.start, span.end)}


def from_points(values: set[int]) -> list[Span]:
    """The maximal runs of consecutive integers, as spans (the normal form)."""
    runs = []
    for _, group in itertools.groupby(enumerate(sorted(values)), lambda p: p[1] - p[0]):
        members = [v for _, v in group]
        runs.append(Span(members[0], members[-1] + 1))
    return runs


def assert_normal(ranges: RangeSet) -> None:
    spans = list(ranges)
    assert all(span.end > span.start for span in spans), "an empty span survived"
    for left, right in itertools.pairwise(spans):
        assert left.end < right.start, f"{left} and {right} overlap or touch"


@NO_DEADLINE
@given(spans_st)
def test_construction_normalises(spans: list[Span]) -> None:
    ranges = RangeSet(spans)
    assert_normal(ranges)
    assert list(ranges) == from_points(points(spans))
    assert ranges.total() == len(points(spans))
    assert bool(ranges) == bool(points(spans))


@NO_DEADLINE
@given(spans_st, spans_st)
def test_union(a: list[Span], b: list[Span]) -> None:
    result = RangeSet(a).union(RangeSet(b))
    assert_normal(result)
    assert points(result) == points(a) | points(b)


@NO_DEADLINE
@given(spans_st, spans_st)
def test_subtract(a: list[Span], b: list[Span]) -> None:
    result = RangeSet(a).subtract(RangeSet(b))
    assert_normal(result)
    assert points(result) == points(a) - points(b)


@NO_DEADLINE
@given(spans_st, spans_st)
def test_intersect(a: list[Span], b: list[Span]) -> None:
    result = RangeSet(a).intersect(RangeSet(b))
    assert_normal(result)
    assert points(result) == points(a) & points(b)


@NO_DEADLINE
@given(spans_st, spans_st)
def test_equality_is_equality_of_the_sets(a: list[Span], b: list[Span]) -> None:
    assert (RangeSet(a) == RangeSet(b)) == (points(a) == points(b))


@NO_DEADLINE
@given(spans_st, span_st.filter(lambda s: s.end > s.start))
def test_contains(spans: list[Span], query: Span) -> None:
    assert RangeSet(spans).contains(query) == (points([query]) <= points(spans))


def test_spans_are_half_open() -> None:
    assert not Span(0, 10).overlaps(Span(10, 20))
    assert Span(0, 10).overlaps(Span(9, 20))
    assert RangeSet([Span(0, 10), Span(10, 20)]) == RangeSet([Span(0, 20)])
    assert len(Span(5, 8)) == 3


def test_a_span_cannot_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        Span(10, 9)
