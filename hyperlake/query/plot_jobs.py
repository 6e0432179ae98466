"""One chart of ``hyperlake plot``, end to end: read the lake, compute the series, draw,
write the file.

A chart is a small frozen dataclass (picklable, so a process pool can run a batch of
them) whose ``render`` reads through ``hyperlake.query.loaders`` — only the partitions of
the one market and the dates asked for — computes its series with
``hyperlake.query.plot_series`` and draws it with ``hyperlake.query.plots``. A market or
span without data raises ``NoData`` (a ``UserError``): one line and exit 2 for a single
chart, a skip line in a batch (``render_or_skip``). Nothing is written then: no empty
image, ever.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import quote

import polars as pl

from hyperlake.errors import UserError
from hyperlake.lake.paths import LakePaths
from hyperlake.lake.store import Location
from hyperlake.query.loaders import (
    TimeRange,
    funding_as_of,
    partition_dates,
    resolve_interval,
    resolve_market,
    scan_candles,
    scan_funding,
)
from hyperlake.query.plot_series import (
    DEFAULT_MA,
    bin_interval,
    candle_series,
    describe_span,
    funding_series,
    heatmap_series,
    parse_window,
    window_ms,
)
from hyperlake.query.plots import (
    candles_figure,
    chart_style,
    funding_figure,
    heatmap_figure,
    save_figure,
)
from hyperlake.schemas.intervals import FIXED_STEP_MS
from hyperlake.schemas.times import format_instant
from hyperlake.schemas.vocabulary import Dataset, PlotFormat

#: A close line of more bars than this is drawn from merged bins (see coarsen_bars).
MAX_LINE_POINTS: Final = 10_000
FUNDING_INTERVAL: Final = "1h"


class NoData(UserError):
    """The market has no rows in the span: nothing to draw, nothing written."""

    def __init__(self, detail: str, market: str | None = None) -> None:
        super().__init__(detail if market is None else f"{market}: {detail}")
        self.detail = detail


@dataclass(frozen=True)
class Target:
    """Where charts go: a folder and a file format."""

    folder: Path
    fmt: PlotFormat = "png"

    def path(self, stem: str) -> Path:
        return self.folder / f"{stem}.{self.fmt}"


@dataclass(frozen=True)
class Rendered:
    market: str
    path: Path
    detail: str


@dataclass(frozen=True)
class Skipped:
    market: str
    reason: str


Outcome = Rendered | Skipped


def file_stem(*parts: str) -> str:
    """A file name from market and interval names: ``:`` ``/`` ``@`` and the like
    percent-encoded (``xyz%3AXYZ100``); ``1M`` (month) spelled ``1mo`` so that it
    never meets ``1m`` (minute) on a case-insensitive disk."""
    return "-".join(quote("1mo" if part == "1M" else part, safe="")
                    for part in parts)


def span_text(span: TimeRange) -> str:
    if span.start_ms is None and span.end_ms is None:
        return "the lake"
    lo = "the first row" if span.start_ms is None else format_instant(span.start_ms)
    hi = "the last row" if span.end_ms is None else format_instant(span.end_ms)
    return f"[{lo}, {hi})"


def no_data(lake: Location, dataset: Dataset, market: str, interval: str, what: str,
            span: TimeRange) -> NoData:
    dates = partition_dates(lake, dataset, market, interval)
    held = f"its partitions run {dates[0]} to {dates[-1]}" if dates else "it has none"
    return NoData(f"no {what} in {span_text(span)} ({held})", market)


def _extent(column: pl.Series) -> tuple[int, int]:
    ms = column.dt.epoch("ms")
    first, last = ms.min(), ms.max()
    assert isinstance(first, int) and isinstance(last, int)
    return first, last


# --- the charts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FundingChart:
    """``hyperlake plot funding``: rate and APR, premium, moving averages."""

    lake: Location
    market: str
    span: TimeRange = field(default_factory=TimeRange)
    target: Target = field(default_factory=lambda: Target(Path(".")))
    ma: str | None = DEFAULT_MA

    def series(self) -> tuple[str, pl.DataFrame]:
        """The market's lake spelling and its ``funding_series`` over the span; the
        moving average is warmed up on the window before the span's start."""
        name = resolve_market(self.lake, "funding", self.market)
        window = parse_window(self.ma, "--ma")
        start = self.span.start_ms
        warm = start if start is None or window is None else max(0, start - window_ms(window))
        series = funding_series(scan_funding(self.lake, name, warm, self.span.end_ms), window)
        if start is not None:
            series = series.filter(pl.col("hour").dt.epoch("ms") >= start)
        if series.is_empty():
            raise no_data(self.lake, "funding", name, FUNDING_INTERVAL, "funding", self.span)
        return name, series

    def render(self) -> Rendered:
        name, series = self.series()
        window = parse_window(self.ma, "--ma")
        first, last = _extent(series["hour"])
        mean = series["apr"].mean()
        shown = f"{mean:.2f} %" if isinstance(mean, float) else "n/a"
        title = (f"{name} funding  ·  {describe_span(first, last)}  ·  {series.height} "
                 f"funding hours  ·  mean APR {shown}")
        path = self.target.path(file_stem("funding", name))
        with chart_style():
            save_figure(funding_figure(series, title, window), path, self.target.fmt)
        return Rendered(name, path, f"{series.height} funding hours")


@dataclass(frozen=True)
class CandleChart:
    """``hyperlake plot candles``: OHLC, volume, and optionally the funding APR."""

    lake: Location
    market: str
    interval: str
    span: TimeRange = field(default_factory=TimeRange)
    target: Target = field(default_factory=lambda: Target(Path(".")))
    with_funding: bool = False

    def series(self) -> tuple[str, str, pl.DataFrame]:
        name = resolve_market(self.lake, "candles", self.market)
        interval = resolve_interval(self.lake, name, self.interval)
        bars = scan_candles(self.lake, name, interval, self.span.start_ms, self.span.end_ms)
        count = bars.select(pl.len()).collect().item()
        if count == 0:
            raise no_data(self.lake, "candles", name, interval, f"{interval} candles",
                          self.span)
        bins = (math.ceil(count / MAX_LINE_POINTS)
                if count > MAX_LINE_POINTS and interval in FIXED_STEP_MS else 1)
        funding = None
        if self.with_funding:
            funding = funding_as_of(self.lake, resolve_market(self.lake, "funding", name),
                                    self.span)
        return name, bin_interval(interval, bins), candle_series(bars, interval, funding,
                                                                  bins=bins)

    def render(self) -> Rendered:
        name, shown, series = self.series()
        first, last = _extent(series["t"])
        title = (f"{name} {shown} candles  ·  {describe_span(first, last)}  ·  "
                 f"{series.height} bars")
        path = self.target.path(file_stem("candles", name, self.interval))
        with chart_style():
            figure = candles_figure(series, title, with_funding=self.with_funding)
            save_figure(figure, path, self.target.fmt)
        return Rendered(name, path, f"{series.height} bars of {shown}")


@dataclass(frozen=True)
class HeatmapChart:
    """``hyperlake plot heatmap``: funding APR per market and UTC day."""

    lake: Location
    markets: tuple[str, ...] = ()  # none: every market with funding in the lake
    span: TimeRange = field(default_factory=TimeRange)
    target: Target = field(default_factory=lambda: Target(Path(".")))

    def names(self) -> list[str]:
        if self.markets:
            return sorted({resolve_market(self.lake, "funding", m) for m in self.markets})
        names = LakePaths(self.lake).markets("funding")
        if not names:
            raise NoData(f"{self.lake / 'funding'}: no funding in the lake yet (run "
                         "hyperlake funding, then hyperlake compact)")
        return names

    def series(self) -> pl.DataFrame:
        frames = [scan_funding(self.lake, name, self.span.start_ms, self.span.end_ms)
                  for name in self.names()]
        series = heatmap_series(pl.concat(frames))
        if series.is_empty():
            raise NoData(f"no market has funding in {span_text(self.span)}")
        return series

    def render(self) -> Rendered:
        series = self.series()
        markets = series["market"].n_unique()
        first, last = series["day"].min(), series["day"].max()
        assert isinstance(first, dt.date) and isinstance(last, dt.date)
        counted = f"{markets} market{'s' if markets != 1 else ''}"
        title = (f"Funding APR by market and day  ·  {first} → {last} (UTC)  ·  "
                 f"{counted}, highest mean APR on top")
        path = self.target.path("funding-heatmap")
        with chart_style():
            save_figure(heatmap_figure(series, title), path, self.target.fmt)
        days = series["day"].n_unique()
        return Rendered("all", path, f"{counted}, {days} day{'s' if days != 1 else ''}")


Chart = FundingChart | CandleChart | HeatmapChart


def render_or_skip(chart: FundingChart | CandleChart) -> Outcome:
    """A batch's unit of work (run in a worker process): a market without data in the
    span is a skip, not a failure of the batch."""
    try:
        return chart.render()
    except NoData as exc:
        return Skipped(chart.market, exc.detail)
    except UserError as exc:  # e.g. --funding for a market without funding
        return Skipped(chart.market, str(exc))
