"""Candle intervals: names, bucket alignment and stepping, in UTC milliseconds.

One place for the arithmetic every stage shares. Fixed-length intervals are aligned
to the Unix epoch, except ``1w`` (Monday 00:00 UTC, as Hyperliquid and Hydromancer
align weeks) and ``1M`` (calendar months), which have no fixed length.
"""

from __future__ import annotations

import datetime as dt

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
# 1970-01-01 was a Thursday: the first Monday is four days later.
_MONDAY_OFFSET_MS = 4 * DAY_MS

FIXED_STEP_MS: dict[str, int] = {
    "1s": SECOND_MS,
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": WEEK_MS,
}

#: Intervals Hyperliquid's own candleSnapshot accepts (no 1s).
HYPERLIQUID_INTERVALS: tuple[str, ...] = (
    "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "3d", "1w", "1M",
)
#: Hydromancer adds 1s candles.
HYDROMANCER_INTERVALS: tuple[str, ...] = ("1s", *HYPERLIQUID_INTERVALS)
#: Dwellir's archive serves only these.
DWELLIR_INTERVALS: tuple[str, ...] = ("1s", "1m", "5m")
ALL_INTERVALS: tuple[str, ...] = HYDROMANCER_INTERVALS


def is_interval(name: str) -> bool:
    return name in FIXED_STEP_MS or name == "1M"


def _month_start(ms: int) -> dt.datetime:
    d = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return dt.datetime(d.year, d.month, 1, tzinfo=dt.UTC)


def _to_ms(d: dt.datetime) -> int:
    return int(d.timestamp()) * 1000


def bucket_start(ms: int, interval: str) -> int:
    """Open time of the bucket of ``interval`` that contains ``ms``."""
    if interval == "1M":
        return _to_ms(_month_start(ms))
    step = FIXED_STEP_MS[interval]
    if interval == "1w":
        return (ms - _MONDAY_OFFSET_MS) // step * step + _MONDAY_OFFSET_MS
    return ms // step * step


def next_bucket(open_ms: int, interval: str) -> int:
    """Open time of the bucket after the one that opens at ``open_ms``."""
    if interval == "1M":
        d = _month_start(open_ms)
        year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        return _to_ms(dt.datetime(year, month, 1, tzinfo=dt.UTC))
    return open_ms + FIXED_STEP_MS[interval]


def shift_buckets(open_ms: int, interval: str, n: int) -> int:
    """Open time ``n`` buckets after (n > 0) or before (n < 0) ``open_ms``."""
    if interval != "1M":
        return open_ms + n * FIXED_STEP_MS[interval]
    d = _month_start(open_ms)
    index = d.year * 12 + (d.month - 1) + n
    return _to_ms(dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC))


def is_aligned(ms: int, interval: str) -> bool:
    return bucket_start(ms, interval) == ms


def first_open(ms: int, interval: str) -> int:
    """Open time of the first bucket that opens at or after ``ms``."""
    start = bucket_start(ms, interval)
    return start if start >= ms else next_bucket(start, interval)


def count_buckets(start_ms: int, end_ms: int, interval: str) -> int:
    """How many buckets of ``interval`` open in [start_ms, end_ms): the one bucket
    counter (ends need not be aligned; a name that is no interval has none)."""
    if not is_interval(interval):
        return 0
    first = first_open(start_ms, interval)
    if interval in FIXED_STEP_MS:
        return max(0, -(-(end_ms - first) // FIXED_STEP_MS[interval]))
    return len(bucket_opens(start_ms, end_ms, interval))


def bucket_opens(start_ms: int, end_ms: int, interval: str) -> list[int]:
    """Open times of the buckets that open in [start_ms, end_ms)."""
    opens: list[int] = []
    t = first_open(start_ms, interval)
    while t < end_ms:
        opens.append(t)
        t = next_bucket(t, interval)
    return opens
