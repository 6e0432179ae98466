"""The bars of a run of many series: one per lane, each the sum of its series."""

from __future__ import annotations

import io

from hyperlake.commands.output import LaneProgress
from hyperlake.lake.paths import SeriesKey


def test_a_lane_bar_sums_its_series_and_draws_on_a_terminal() -> None:
    stream = io.StringIO()
    bars = LaneProgress({"hyperliquid": 10, "funding": 4, "dwellir": 0}, stream=stream,
                        enabled=True)
    assert set(bars.tasks) == {"hyperliquid", "funding"}
    btc = SeriesKey("candles", "hyperliquid", "BTC", "1m")
    eth = SeriesKey("candles", "hyperliquid", "ETH", "1m")
    bars("hyperliquid", btc, 3)
    bars("hyperliquid", eth, 5)
    bars("hyperliquid", btc, 4)  # a series reports its own total so far
    bars("funding", None, 2)
    bars("nowhere", None, 1)  # a lane without work is ignored
    task = bars.progress.tasks[bars.tasks["hyperliquid"]]
    assert task.completed == 9
    bars.close()
    assert "hyperliquid" in stream.getvalue() and "funding" in stream.getvalue()


def test_nothing_is_drawn_off_a_terminal_or_without_work() -> None:
    stream = io.StringIO()
    LaneProgress({"hyperliquid": 5}, stream=stream).close()
    LaneProgress({"hyperliquid": 0}, stream=stream, enabled=True).close()
    assert stream.getvalue() == ""
