"""How missing spans become requests: spans that fit one window share a request when
the settled buckets between them weigh less than a request of their own."""

from __future__ import annotations

from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.pipelines.candles.snapshot import requests_for
from hyperlake.pipelines.funding import packed_windows
from hyperlake.schemas.intervals import HOUR_MS, MINUTE_MS

M = MINUTE_MS


def spans(*pairs: tuple[int, int]) -> RangeSet:
    return RangeSet(Span(a * M, b * M) for a, b in pairs)


def test_a_provisional_bucket_and_the_new_ones_share_a_request() -> None:
    asks = requests_for(spans((100, 101), (105, 165)), "1m", 5000, lambda n: n < 1200)
    assert asks == [(Span(100 * M, 165 * M), [Span(100 * M, 101 * M), Span(105 * M, 165 * M)])]


def test_spans_too_far_apart_or_not_worth_it_are_asked_apart() -> None:
    far = requests_for(spans((0, 10), (4995, 5005)), "1m", 5000, lambda n: True)
    assert [ask for ask, _ in far] == [Span(0, 10 * M), Span(4995 * M, 5005 * M)]
    costly = requests_for(spans((0, 10), (2000, 2010)), "1m", 5000, lambda n: n < 1200)
    assert len(costly) == 2


def test_a_long_span_is_cut_into_windows_of_the_size() -> None:
    asks = requests_for(spans((0, 12_000)), "1m", 5000, lambda n: True)
    assert [ask for ask, _ in asks] == [Span(0, 5000 * M), Span(5000 * M, 10_000 * M),
                                        Span(10_000 * M, 12_000 * M)]
    assert all(parts == [ask] for ask, parts in asks)


def test_funding_windows_close_together_share_a_request() -> None:
    missing = RangeSet([Span(0, HOUR_MS), Span(5 * HOUR_MS, 7 * HOUR_MS),
                        Span(400 * HOUR_MS, 401 * HOUR_MS)])
    packed = packed_windows(missing, 336)
    assert [ask for ask, _ in packed] == [Span(0, 7 * HOUR_MS),
                                          Span(400 * HOUR_MS, 401 * HOUR_MS)]
    assert packed[0][1] == [Span(0, HOUR_MS), Span(5 * HOUR_MS, 7 * HOUR_MS)]
