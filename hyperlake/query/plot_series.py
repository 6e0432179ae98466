"""The numbers behind every ``hyperlake plot`` chart, as pure functions of polars frames.

A chart is only as good as the series it draws, so the series are computed here, apart
from the drawing, and exported (``hyperlake.funding_series``, ``hyperlake.heatmap_series``,
``hyperlake.candle_series``): a notebook gets the same numbers the PNG shows.

The rules, once:

- **Rate and APR.** ``rate`` is ``fundingRate`` as the exchange pays it (a fraction per
  funding period); ``apr`` is ``rate * 24 * 365 * 100``, in percent, without compounding,
  as the exchange shows it. (Before 2023-06-08 the period was 8 hours; the rule is the
  one the ``candles_with_funding`` view and ``features`` use, applied to every row.)
- **One row per funding hour.** When an hour holds several rows, the earliest ``time``
  stands for it (``loaders.hourly_funding``, the rule of the as-of join).
- **Moving averages over gaps.** The moving average at hour *h* is the mean of the
  values present in the trailing window (*h* - window, *h*]: a missing hour is neither
  zero nor interpolated, it simply is not in the mean. A NaN premium (the API has sent
  "NaN") counts as missing. Trailing, never centred: the average at *h* uses nothing
  published after *h*.
- **Gaps.** ``gap_before`` marks a row whose predecessor is not the bucket just before
  it (a missing candle bucket; a missing funding hour, or 8 hours before 2023-06-08).
  Charts break their lines there instead of drawing across the hole.
- **Alignment without lookahead.** A bar gets the funding of the latest funding hour at
  or before its open time ``t`` (``loaders.attach_funding``), and only while that hour
  is still the one in force (``t`` before the next funding hour is due): a bar inside a
  missing funding hour gets null, not the stale rate from before the gap.
"""

from __future__ import annotations

import re
from typing import Final

import polars as pl

from hyperlake.errors import UserError
from hyperlake.query.loaders import attach_funding, hourly_funding
from hyperlake.schemas.exchange import HOURLY_FUNDING_FROM_MS
from hyperlake.schemas.funding import HOURS_PER_YEAR
from hyperlake.schemas.intervals import FIXED_STEP_MS, HOUR_MS, is_interval
from hyperlake.schemas.times import parse_duration, utc_datetime

#: A funding rate times this is its APR in percent (rate * 24 * 365 * 100).
APR_PERCENT_PER_RATE: Final = HOURS_PER_YEAR * 100
TIMES: Final = "\N{MULTIPLICATION SIGN}"
#: The moving-average window a funding chart draws unless told otherwise.
DEFAULT_MA: Final = "24h"
#: Funding was paid every 8 hours before HOURLY_FUNDING_FROM_MS.
EIGHT_HOURS_MS: Final = 8 * HOUR_MS

_WINDOW = re.compile(r"(\d+)(m|h|d|w)")

Frame = pl.DataFrame | pl.LazyFrame


def parse_window(text: str | None, field: str = "ma") -> str | None:
    """``"24h"``, ``"7d"``, ``"90m"``, ``"2w"`` → the same text (a polars duration);
    ``None``, ``""``, ``"0"`` or ``"none"`` → no moving average."""
    if text is None or text.strip().lower() in ("", "0", "none", "off"):
        return None
    match = _WINDOW.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise UserError(f"{field}: {text!r} is not a window; give a number and a unit "
                        "m, h, d or w (e.g. 24h, 7d), or none")
    return match.group(0)


def window_ms(window: str) -> int:
    """The length of a window accepted by ``parse_window``, in milliseconds."""
    return parse_duration(window, "ma")


def _lazy(frame: Frame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def _ms(column: str) -> pl.Expr:
    return pl.col(column).dt.epoch("ms")


def funding_cadence_ms(hour: pl.Expr) -> pl.Expr:
    """How long the funding of ``hour`` (epoch ms) stays in force: 1 h, 8 h before
    2023-06-08."""
    return (pl.when(hour < HOURLY_FUNDING_FROM_MS).then(pl.lit(EIGHT_HOURS_MS))
            .otherwise(pl.lit(HOUR_MS)))


# --- funding ----------------------------------------------------------------------------


def funding_series(funding: Frame, ma: str | None = DEFAULT_MA) -> pl.DataFrame:
    """One row per funding hour, sorted: ``hour``, ``rate`` (fraction per period),
    ``apr`` (percent), ``premium`` (fraction), their trailing moving averages
    ``rate_ma``, ``apr_ma``, ``premium_ma`` over ``ma`` (null without one), and
    ``gap_before``; a NaN rate or premium reads as null. ``funding`` has the
    ``funding`` view's columns (at least ``time``, ``funding_hour``, ``fundingRate``,
    ``premium``), e.g. ``hyperlake.scan_funding(...)``.
    """
    window = parse_window(ma)
    hourly = (hourly_funding(_lazy(funding))
              .select(pl.col("funding_hour").alias("hour"),
                      pl.col("funding_rate").fill_nan(None).alias("rate"),
                      pl.col("premium").fill_nan(None)))
    averaged = hourly.with_columns(
        *(_trailing_mean(name, window).alias(f"{name}_ma") for name in ("rate", "premium")))
    previous = _ms("hour").shift(1)
    return averaged.select(
        "hour", "rate", (pl.col("rate") * APR_PERCENT_PER_RATE).alias("apr"), "premium",
        "rate_ma", (pl.col("rate_ma") * APR_PERCENT_PER_RATE).alias("apr_ma"), "premium_ma",
        (_ms("hour") > previous + funding_cadence_ms(previous)).fill_null(False)
        .alias("gap_before"),
    ).collect()


def _trailing_mean(column: str, window: str | None) -> pl.Expr:
    if window is None:
        return pl.lit(None, pl.Float64)
    return pl.col(column).rolling_mean_by("hour", window_size=window, closed="right")


# --- heatmap ----------------------------------------------------------------------------


def heatmap_series(funding: Frame) -> pl.DataFrame:
    """Funding APR per market and UTC day: ``market``, ``day``, ``apr`` (percent, the
    mean of the day's hourly rates), ``hours`` (how many), and ``mean_apr``, the market's
    mean over every hour of the frame. Rows ordered by ``mean_apr``, highest first
    (then by market name), then by day; a day without funding has no row.
    ``funding`` holds one or more markets' funding rows (the ``funding`` view's columns).
    """
    per_hour = (hourly_funding(_lazy(funding), by=("market",))
                .with_columns(apr=pl.col("funding_rate").fill_nan(None) * APR_PERCENT_PER_RATE))
    daily = (per_hour.group_by("market", pl.col("funding_hour").dt.date().alias("day"))
             .agg(pl.col("apr").mean(), pl.len().cast(pl.Int64).alias("hours")))
    means = per_hour.group_by("market").agg(pl.col("apr").mean().alias("mean_apr"))
    return (daily.join(means, on="market")
            .sort(["mean_apr", "market", "day"], descending=[True, False, False])
            .select("market", "day", "apr", "hours", "mean_apr").collect())


# --- candles ----------------------------------------------------------------------------


def _next_open(interval: str, bins: int) -> pl.Expr:
    """The open time of the bucket (of ``bins`` buckets) after ``t``."""
    if interval in FIXED_STEP_MS:
        return pl.col("t") + pl.duration(milliseconds=FIXED_STEP_MS[interval] * bins)
    return pl.col("t").dt.offset_by(f"{bins}mo")


def candle_series(bars: Frame, interval: str, funding: Frame | None = None, *,
                  bins: int = 1) -> pl.DataFrame:
    """Bars sorted by ``t``: ``t``, ``t_next`` (the next bucket's open), ``o h l c v``,
    ``gap_before``; with ``funding`` (funding rows of the same market, starting early
    enough to hold the hour in force at the first bar) also ``funding_hour``, ``rate``
    and ``apr`` (percent) as of each bar's open, null inside a missing funding hour.
    ``bins`` > 1 first merges that many buckets into one (``coarsen_bars``)."""
    if not is_interval(interval):
        raise UserError(f"interval: {interval!r} is not an interval")
    ordered = (coarsen_bars(bars, interval, bins).select("t", "o", "h", "l", "c", "v")
               .sort("t").with_columns(t_next=_next_open(interval, bins)))
    series = ordered.with_columns(
        gap_before=(pl.col("t") > pl.col("t_next").shift(1)).fill_null(False))
    columns = ["t", "t_next", "o", "h", "l", "c", "v", "gap_before"]
    if funding is None:
        return series.select(columns).collect()
    joined = attach_funding(series, _lazy(funding))
    in_force = _ms("t") < _ms("funding_hour") + funding_cadence_ms(_ms("funding_hour"))
    return joined.select(
        *columns,
        pl.when(in_force).then(pl.col("funding_hour")).alias("funding_hour"),
        pl.when(in_force).then(pl.col("funding_rate")).alias("rate"),
        pl.when(in_force).then(pl.col("funding_rate") * APR_PERCENT_PER_RATE).alias("apr"),
    ).collect()


def coarsen_bars(bars: Frame, interval: str, bins: int) -> pl.LazyFrame:
    """Bars of a fixed-length ``interval`` merged ``bins`` at a time (epoch-aligned):
    open of the first, high max, low min, close of the last, volume summed. A chart of
    millions of 1s bars draws these instead; a bin without bars stays missing."""
    if bins <= 1:
        return _lazy(bars)
    if interval not in FIXED_STEP_MS:
        raise UserError(f"interval: {interval!r} has no fixed length to merge bars by")
    step = FIXED_STEP_MS[interval] * bins
    return (_lazy(bars).sort("t")
            .group_by_dynamic("t", every=f"{step}ms", closed="left", label="left")
            .agg(pl.col("o").first(), pl.col("h").max(), pl.col("l").min(),
                 pl.col("c").last(), pl.col("v").sum()))


def bin_interval(interval: str, bins: int) -> str:
    """How a coarsened series is described (``1s x 600``, with a multiplication sign)."""
    return interval if bins <= 1 else f"{interval} {TIMES} {bins}"


def describe_span(first_ms: int, last_ms: int) -> str:
    """``2026-03-28 00:00 → 2026-03-30 23:00 UTC`` (dates only for whole days)."""
    first, last = utc_datetime(first_ms), utc_datetime(last_ms)
    whole_days = first_ms % (24 * HOUR_MS) == 0 and last_ms % (24 * HOUR_MS) == 0
    shape = "%Y-%m-%d" if whole_days else "%Y-%m-%d %H:%M"
    return f"{first:{shape}} → {last:{shape}} UTC"
