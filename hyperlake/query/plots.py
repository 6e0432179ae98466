"""Drawing the ``hyperlake plot`` charts with matplotlib, headless and offline.

Why matplotlib, and this way: it renders PNG and SVG with its own Agg and SVG
backends, no browser, no network, fonts bundled (plotly's image export needs a Chrome
that cannot be installed offline). Figures are made with the object API
(``matplotlib.figure.Figure``), never ``pyplot``: no global figure registry, no GUI
backend chosen behind a notebook user's back, and a worker process draws one chart
after another without leaking figures. The series come from
``hyperlake.query.plot_series``; this module only lays them out.

Every chart has a UTC time axis (``ConciseDateFormatter``: hours within a day, days
within months, years beyond, each label printed once) and breaks its lines where the
series has a gap instead of drawing across it. Figure sizes are fixed in inches, so a
PNG's pixel size is known: ``FUNDING_SIZE`` * ``DPI`` and so on.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
import numpy.typing as npt
import polars as pl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import CenteredNorm
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter
from matplotlib.typing import RcKeyType
from PIL import Image

from hyperlake.lake.atomic import atomic_path
from hyperlake.query.plot_series import APR_PERCENT_PER_RATE, TIMES
from hyperlake.schemas.vocabulary import PlotFormat

DPI: Final = 150
#: (width, height) in inches.
FUNDING_SIZE: Final = (12.0, 7.0)
CANDLES_SIZE: Final = (12.0, 7.0)
CANDLES_WITH_FUNDING_SIZE: Final = (12.0, 8.5)
HEATMAP_WIDTH: Final = 12.0
#: PNGs are written with a palette of this many colours (see compact_png).
PALETTE_COLOURS: Final = 256
#: Up to this many bars are drawn as candlesticks; more become a close line.
MAX_CANDLESTICKS: Final = 300

UP, DOWN = "#26a69a", "#ef5350"
RATE, AVERAGE, PREMIUM, ZERO = "#1f77b4", "#d62728", "#6a3d9a", "#555555"
STYLE: Final[dict[RcKeyType, Any]] = {
    "timezone": "UTC",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "legend.fontsize": 8,
    "legend.framealpha": 0.85,
    "svg.hashsalt": "hyperlake",  # the same chart, the same SVG bytes
    "svg.fonttype": "none",  # text stays text in an SVG
}

Floats = npt.NDArray[np.float64]
Times = npt.NDArray[np.datetime64]
Flags = npt.NDArray[np.bool_]
Durations = npt.NDArray[np.timedelta64]


# --- helpers ------------------------------------------------------------------------------


@contextmanager
def chart_style() -> Iterator[None]:
    """The house style, for the figures made inside (rcParams are read at creation)."""
    with mpl.rc_context(STYLE):
        yield


def pixel_size(size: tuple[float, float]) -> tuple[int, int]:
    """(width, height) in pixels of a PNG of a figure of ``size`` inches."""
    return round(size[0] * DPI), round(size[1] * DPI)


def heatmap_size(rows: int) -> tuple[float, float]:
    """Room for every market's name: 0.22 inch a row, between 4 and 30 inches."""
    return HEATMAP_WIDTH, min(30.0, max(4.0, 1.8 + 0.22 * rows))


def times(column: pl.Series) -> Times:
    """A UTC timestamp column as naive ``datetime64[ms]`` (matplotlib reads it as UTC)."""
    return column.dt.replace_time_zone(None).dt.cast_time_unit("ms").to_numpy()


def floats(column: pl.Series) -> Floats:
    """Values as float64, null as NaN (a NaN breaks a line)."""
    return column.cast(pl.Float64).fill_null(np.nan).to_numpy()


def broken(x: Times, ys: Sequence[Floats], gap_before: Flags,
           ends: Times | None = None) -> tuple[Times, list[Floats]]:
    """``x`` and ``ys`` with a NaN point before every row that follows a gap, so that
    lines stop at the last bucket before a hole and resume after it. The NaN point sits
    at the previous row's end (``ends``, for steps) or at the row itself."""
    at = np.flatnonzero(gap_before)
    if at.size == 0:
        return x, list(ys)
    where = x[at] if ends is None else ends[at - 1]
    return np.insert(x, at, where), [np.insert(y, at, np.nan) for y in ys]


def time_axis(ax: Axes, days: int | None = None) -> None:
    """Ticks that read well from an hour to several years, in UTC. With ``days`` (a
    chart of whole days) ticks fall on midnights only, never inside a day."""
    locator: mdates.DateLocator
    if days is not None and days <= 21:
        locator = mdates.DayLocator(interval=max(1, math.ceil(days / 10)), tz=dt.UTC)
    else:
        locator = mdates.AutoDateLocator(tz=dt.UTC, minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=dt.UTC))


def compact_numbers(ax: Axes) -> None:
    """Small fractions as ``x10^-5`` once above the axis, not ``0.0000125`` per tick."""
    formatter = ScalarFormatter(useMathText=True)
    formatter.set_powerlimits((-3, 4))
    ax.yaxis.set_major_formatter(formatter)


def zero_line(ax: Axes) -> None:
    ax.axhline(0.0, color=ZERO, linewidth=0.8, zorder=1)


def line_width(points: int) -> float:
    return 1.1 if points <= 500 else 0.7 if points <= 5000 else 0.45


def line_alpha(points: int) -> float:
    """Dense raw lines lighter, so that the moving average drawn over them shows."""
    return 1.0 if points <= 2000 else 0.7


def save_figure(figure: Figure, path: Path, fmt: PlotFormat) -> None:
    """Write the figure to ``path`` atomically: a failed or interrupted save leaves no
    file (or the previous one)."""
    with atomic_path(path) as tmp:
        if fmt == "png":
            compact_png(figure).save(tmp, format="PNG", optimize=True)
        else:
            figure.savefig(tmp, format=fmt, dpi=DPI, metadata={"Date": None})


def compact_png(figure: Figure) -> Image.Image:
    """The figure rendered by Agg, as a 256-colour palette image: a chart is line art
    on white, so the palette loses nothing the eye sees and the file is about a third
    of a full-colour PNG's size (a year of funding charts for every market adds up)."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgb = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
    return rgb.quantize(PALETTE_COLOURS, method=Image.Quantize.MAXCOVERAGE,
                        dither=Image.Dither.NONE)


# --- funding ------------------------------------------------------------------------------


def funding_figure(series: pl.DataFrame, title: str, ma: str | None) -> Figure:
    """Top: the hourly rate (left axis) and its APR (right axis, locked to the left),
    moving average dashed, zero line; bottom: the premium and its moving average."""
    figure = Figure(figsize=FUNDING_SIZE, dpi=DPI, layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    x = times(series["hour"])
    width = line_width(series.height)
    gaps = series["gap_before"]
    bx, (rate, rate_ma, premium, premium_ma) = broken(
        x, [floats(series[c]) for c in ("rate", "rate_ma", "premium", "premium_ma")],
        gaps.to_numpy())

    zero_line(top)
    alpha = line_alpha(series.height)
    top.plot(bx, rate, color=RATE, linewidth=width, alpha=alpha,
             label="funding rate (per hour)")
    if ma is not None:
        top.plot(bx, rate_ma, color=AVERAGE, linewidth=1.5, linestyle="--",
                 label=f"{ma} moving average")
    top.set_ylabel("funding rate (fraction per hour)")
    compact_numbers(top)
    apr = top.secondary_yaxis("right", functions=(_to_apr, _from_apr))
    apr.set_ylabel(f"APR % (rate {TIMES} 24 {TIMES} 365 {TIMES} 100)")
    top.legend(loc="upper left")

    zero_line(bottom)
    bottom.plot(bx, premium, color=PREMIUM, linewidth=width, alpha=alpha, label="premium")
    if ma is not None:
        bottom.plot(bx, premium_ma, color=AVERAGE, linewidth=1.5, linestyle="--",
                    label=f"{ma} moving average")
    bottom.set_ylabel("premium (fraction)")
    compact_numbers(bottom)
    bottom.legend(loc="upper left")
    bottom.set_xlabel("time (UTC)")
    time_axis(bottom)
    figure.suptitle(title, fontsize=12)
    return figure


def _to_apr(rate: Floats) -> Floats:
    return rate * APR_PERCENT_PER_RATE


def _from_apr(apr: Floats) -> Floats:
    return apr / APR_PERCENT_PER_RATE


# --- heatmap ------------------------------------------------------------------------------


def heatmap_matrix(series: pl.DataFrame) -> tuple[list[str], Times, Floats]:
    """Markets in ``series``' order (rows), every day from the first to the last
    (columns), and the APR matrix, NaN where a market has no funding that day."""
    markets = series["market"].unique(maintain_order=True).to_list()
    first, last = series["day"].min(), series["day"].max()
    assert isinstance(first, dt.date) and isinstance(last, dt.date)
    days = np.arange(np.datetime64(first, "D"), np.datetime64(last, "D") + 1)
    matrix = np.full((len(markets), len(days)), np.nan)
    row = {name: i for i, name in enumerate(markets)}
    rows = np.array([row[m] for m in series["market"].to_list()], dtype=np.int64)
    cols = (series["day"].to_numpy().astype("datetime64[D]") - days[0]).astype(np.int64)
    matrix[rows, cols] = floats(series["apr"])
    return markets, days, matrix


def heatmap_figure(series: pl.DataFrame, title: str) -> Figure:
    """Funding APR per market (rows, highest mean on top) by UTC day (columns), on a
    diverging scale centred on zero; days without funding grey."""
    markets, days, matrix = heatmap_matrix(series)
    figure = Figure(figsize=heatmap_size(len(markets)), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    edges = np.append(days, days[-1] + 1).astype("datetime64[ms]")
    values = np.ma.masked_invalid(matrix)
    # Centred on zero; the range set by the 98th percentile of |APR| so that one
    # extreme day does not wash every other cell out (beyond it: the end colours).
    spread = float(np.nanpercentile(np.abs(matrix), 98)) if np.isfinite(matrix).any() else 1.0
    cmap = mpl.colormaps["RdBu_r"].with_extremes(bad="#d9d9d9")
    mesh = ax.pcolormesh(edges, np.arange(len(markets) + 1), values, cmap=cmap,
                         norm=CenteredNorm(vcenter=0.0, halfrange=max(spread, 1e-9)),
                         shading="flat", linewidth=0)
    ax.set_yticks(np.arange(len(markets)) + 0.5, labels=markets,
                  fontsize=8 if len(markets) <= 60 else 6)
    ax.set_ylim(len(markets), 0)  # the highest mean APR on top
    ax.grid(False)
    ax.set_xlabel("day (UTC)")
    time_axis(ax, days=len(days))
    bar = figure.colorbar(mesh, ax=ax, extend="both", pad=0.01, fraction=0.04)
    bar.set_label("funding APR % (daily mean of hourly rates)")
    figure.suptitle(title, fontsize=12)
    return figure


# --- candles ------------------------------------------------------------------------------


def candles_figure(series: pl.DataFrame, title: str, *, with_funding: bool) -> Figure:
    """Price (candlesticks, or a close line over the high-low range when there are more
    than ``MAX_CANDLESTICKS`` bars), volume, and with ``with_funding`` the funding APR in
    force at each bar's open. Missing buckets stay empty."""
    size = CANDLES_WITH_FUNDING_SIZE if with_funding else CANDLES_SIZE
    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    ratios = [3.0, 1.0, 1.2] if with_funding else [3.0, 1.0]
    axes = figure.subplots(len(ratios), 1, sharex=True, height_ratios=ratios)
    price, volume = axes[0], axes[1]
    start, end = times(series["t"]), times(series["t_next"])
    middle = start + (end - start) / 2
    if series.height <= MAX_CANDLESTICKS:
        _candlesticks(price, volume, series, middle, (end - start) * 0.7)
    else:
        _close_line(price, volume, series, middle)
    price.set_ylabel("price")
    price.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))
    volume.set_ylabel("volume")
    compact_numbers(volume)
    if with_funding:
        _funding_panel(axes[2], series, start, end)
    axes[-1].set_xlabel("time (UTC)")
    time_axis(axes[-1])
    figure.suptitle(title, fontsize=12)
    return figure


def _candlesticks(price: Axes, volume: Axes, series: pl.DataFrame, middle: Times,
                  width: Durations) -> None:
    o, h, low, c, v = (floats(series[name]) for name in ("o", "h", "l", "c", "v"))
    up = c >= o
    colours = [UP if rising else DOWN for rising in up]
    price.vlines(middle, low, h, colors=colours, linewidth=0.8)
    body = np.abs(c - o)
    price.bar(middle, np.where(body > 0, body, np.nan), bottom=np.minimum(o, c),
              width=width, color=colours, linewidth=0)
    flat = body == 0  # a doji: draw its open/close tick, a zero-height bar shows nothing
    half = width / 2
    price.hlines(c[flat], (middle - half)[flat], (middle + half)[flat],
                 colors=[colour for colour, f in zip(colours, flat, strict=True) if f],
                 linewidth=0.8)
    volume.bar(middle, v, width=width, color=colours, linewidth=0)


def _close_line(price: Axes, volume: Axes, series: pl.DataFrame, middle: Times) -> None:
    x, (low, high, close, v) = broken(
        middle, [floats(series[name]) for name in ("l", "h", "c", "v")],
        series["gap_before"].to_numpy())
    price.fill_between(x, low, high, color=RATE, alpha=0.2, linewidth=0,
                       label="high-low range")
    price.plot(x, close, color=RATE, linewidth=line_width(series.height), label="close")
    price.legend(loc="upper left")
    volume.fill_between(x, 0, v, color=ZERO, alpha=0.6, linewidth=0, step="mid")


def _funding_panel(ax: Axes, series: pl.DataFrame, start: Times, end: Times) -> None:
    """The APR in force over each bar, a step over [t, next bucket); broken where a
    bucket is missing or no funding hour was in force (null: nothing drawn)."""
    apr = floats(series["apr"])
    x, y = np.append(start, end[-1]), np.append(apr, apr[-1])  # hold the last step
    gaps = np.append(series["gap_before"].to_numpy(), False)
    bx, (by,) = broken(x, [y], gaps, ends=np.append(end, end[-1]))
    zero_line(ax)
    ax.plot(bx, by, color=AVERAGE, linewidth=1.0, drawstyle="steps-post",
            label="funding APR % in force at the bar's open")
    ax.set_ylabel("funding APR %")
    ax.legend(loc="upper left")
