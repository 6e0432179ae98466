"""Bucket arithmetic over numpy arrays of epoch-ms keys: which buckets a span holds,
which keys fall in spans, on the grid, repeated or shared — vectorised, because a
year of 1s candles is 31.5 million keys."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from hyperlake.lake.ranges import RangeSet, buckets_in
from hyperlake.schemas.exchange import HOURLY_FUNDING_FROM_MS
from hyperlake.schemas.intervals import (
    FIXED_STEP_MS,
    HOUR_MS,
    bucket_opens,
    bucket_start,
    first_open,
    is_interval,
    next_bucket,
)
from hyperlake.schemas.times import format_instant

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

#: Before 2023-06-08 funding was paid every 8 hours.
EIGHT_HOURS_MS = 8 * HOUR_MS


def union(sets: Iterable[RangeSet]) -> RangeSet:
    return RangeSet(span for rs in sets for span in rs)


def opens_in(lo: int, hi: int, interval: str) -> I64:
    """Open times of the buckets that open in [lo, hi), as an array."""
    if interval not in FIXED_STEP_MS:
        return np.asarray(bucket_opens(lo, hi, interval), dtype=np.int64)
    return np.arange(first_open(lo, interval), hi, FIXED_STEP_MS[interval], dtype=np.int64)


def extent_dict(spans: RangeSet, interval: str) -> dict[str, object]:
    """First and last bucket (ISO), bucket count and span count of a coverage."""
    if not spans or not is_interval(interval):
        return {"first": None, "last": None, "buckets": 0, "spans": len(spans.spans)}
    last = bucket_start(spans.spans[-1].end - 1, interval)
    return {"first": format_instant(spans.spans[0].start), "last": format_instant(last),
            "buckets": buckets_in(spans, interval), "spans": len(spans.spans)}


def inside(keys: I64, spans: RangeSet) -> Mask:
    """Which keys fall in one of the (sorted, disjoint) spans."""
    if not spans or len(keys) == 0:
        return np.zeros(len(keys), dtype=np.bool_)
    starts = np.asarray([s.start for s in spans], dtype=np.int64)
    ends = np.asarray([s.end for s in spans], dtype=np.int64)
    index = np.searchsorted(starts, keys, side="right") - 1
    found = index >= 0
    found[found] = keys[found] < ends[index[found]]
    return found


def grid_starts(keys: I64, interval: str) -> I64:
    """The bucket open of each key (vectorised ``bucket_start``)."""
    if interval not in FIXED_STEP_MS:
        return np.asarray([bucket_start(k, interval) for k in keys.tolist()], dtype=np.int64)
    step = FIXED_STEP_MS[interval]
    offset = bucket_start(0, interval) % step  # 1w: weeks open on Monday
    return (keys - offset) // step * step + offset


def grid_next(keys: I64, interval: str) -> I64:
    """``next_bucket`` of each key."""
    if interval not in FIXED_STEP_MS:
        return np.asarray([next_bucket(k, interval) for k in keys.tolist()], dtype=np.int64)
    return keys + FIXED_STEP_MS[interval]


def is_funding_hour(hours: I64) -> Mask:
    result: Mask = (hours >= HOURLY_FUNDING_FROM_MS) | (hours % EIGHT_HOURS_MS == 0)
    return result


def distinct(keys: I64) -> I64:
    """Sorted distinct keys (sorting beats ``np.unique``'s hashing on int64 keys)."""
    ordered = np.sort(keys)
    if len(ordered) < 2:
        return ordered
    first: I64 = ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
    return first


def member(values: I64, pool: I64) -> Mask:
    """Which values are in ``pool`` (by binary search of the sorted pool)."""
    if len(pool) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=np.bool_)
    ordered = np.sort(pool)
    index = np.minimum(np.searchsorted(ordered, values), len(ordered) - 1)
    found: Mask = ordered[index] == values
    return found


def repeated(keys: I64) -> I64:
    """Keys that occur more than once, one entry per extra occurrence."""
    ordered = np.sort(keys)
    extra: I64 = ordered[1:][ordered[1:] == ordered[:-1]]
    return extra
