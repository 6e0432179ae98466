"""What commands print: the progress bar (silent off a terminal, informative on one),
the counters it shows, and the one-line JSON summary."""

from __future__ import annotations

import io
import json

from hyperlake.commands.output import ProgressBar, summary_line
from hyperlake.pipelines.runner import Counters


def test_counters_merge() -> None:
    run = Counters(fetched=1, requests=2)
    run.merge(Counters(fetched=2, empty=1, retried=3, failed=4, requests=5))
    assert run == Counters(fetched=3, empty=1, retried=3, failed=4, requests=7)


def test_disabled_writes_nothing() -> None:
    stream = io.StringIO()
    bar = ProgressBar("candles", stream=stream, enabled=False)
    bar(10, Counters(fetched=1, requests=1), 1)
    bar.close()
    assert stream.getvalue() == ""
    assert bar.progress is None


def test_defaults_to_disabled_when_not_a_tty() -> None:
    stream = io.StringIO()
    bar = ProgressBar("candles", stream=stream)
    assert not bar.enabled
    bar(10, Counters(), 1)
    bar.close()
    assert stream.getvalue() == ""


def test_enabled_bar_shows_label_progress_and_counts() -> None:
    stream = io.StringIO()
    bar = ProgressBar("dwellir BTC 1s", stream=stream, enabled=True, width=200)
    bar(100, Counters(fetched=20, empty=5, retried=2, failed=1, requests=30), 25)
    bar.close()
    out = stream.getvalue()
    assert "dwellir BTC 1s" in out
    assert "25/100" in out
    assert "25%" in out
    assert "req/s" in out and "ETA" in out
    assert "fetched 20 empty 5 retried 2 failed 1" in out
    assert "\n" in out  # the line is ended when the bar closes


def test_the_bar_is_made_on_the_first_call_with_that_total() -> None:
    bar = ProgressBar("job", stream=io.StringIO(), enabled=True)
    bar.close()  # nothing drawn yet: closing is harmless
    assert bar.progress is None
    bar(40, Counters(fetched=3), 3)
    first = bar.progress
    assert first is not None and first.tasks[0].total == 40
    bar(40, Counters(fetched=5), 5)
    assert bar.progress is first and first.tasks[0].completed == 5
    bar.close()


def test_done_is_capped_at_the_total() -> None:
    bar = ProgressBar("job", stream=io.StringIO(), enabled=True)
    bar(10, Counters(), 12)
    assert bar.progress is not None and bar.progress.tasks[0].completed == 10
    bar.close()


def test_summary_line_is_one_line_of_json_in_order() -> None:
    line = summary_line(command="backfill", fetched=3, note="two\nlines", path=io)
    assert "\n" not in line
    decoded = json.loads(line)
    assert list(decoded) == ["command", "fetched", "note", "path"]
    assert decoded["note"] == "two\nlines"
    assert decoded["fetched"] == 3
