"""The progress line: silent when disabled, informative and throttled when enabled,
and the one-line JSON summary."""

from __future__ import annotations

import io
import json

from hyperlake.net.progress import Counters, Progress, format_duration, summary_line


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_counters_merge() -> None:
    run = Counters(fetched=1, requests=2)
    run.merge(Counters(fetched=2, empty=1, retried=3, failed=4, requests=5))
    assert run == Counters(fetched=3, empty=1, retried=3, failed=4, requests=7)


def test_disabled_writes_nothing() -> None:
    stream = io.StringIO()
    progress = Progress(10, "candles", stream=stream, enabled=False)
    progress.update(Counters(fetched=1, requests=1), 1)
    progress.close()
    assert stream.getvalue() == ""


def test_defaults_to_disabled_when_not_a_tty() -> None:
    stream = io.StringIO()
    progress = Progress(10, "candles", stream=stream)
    assert not progress.enabled
    progress.update(Counters(), 1)
    assert stream.getvalue() == ""


def test_enabled_line_shows_counts_rate_and_eta() -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(100, "candles", stream=stream, enabled=True, clock=clock)
    clock.now += 10.0
    progress.update(Counters(fetched=20, empty=5, retried=2, failed=1, requests=30), 25)
    line = stream.getvalue()
    assert line.startswith("\rcandles [")
    assert "\n" not in line
    assert "25/100" in line
    assert "25.0%" in line
    assert "3.0 req/s" in line
    assert "ETA 0:30" in line  # 75 left at 2.5 per second
    assert "fetched 20 empty 5 retried 2 failed 1" in line


def test_eta_is_unknown_before_anything_is_done() -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(10, "x", stream=stream, enabled=True, clock=clock)
    progress.update(Counters(), 0)
    assert "ETA --:--" in stream.getvalue()


def test_redraws_are_throttled_and_close_draws_the_last_state() -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(1000, "x", stream=stream, enabled=True, clock=clock)
    for done in range(1, 101):  # 100 updates over one second
        clock.now += 0.01
        progress.update(Counters(fetched=done, requests=done), done)
    assert 4 <= stream.getvalue().count("\r") <= 6
    progress.close()
    out = stream.getvalue()
    assert out.endswith("\n")
    assert "100/1000" in out.rsplit("\r", 1)[1]


def test_a_shorter_line_wipes_the_longer_one() -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(10, "x", stream=stream, enabled=True, clock=clock)
    clock.now += 1
    progress.update(Counters(fetched=123456, requests=100000), 1)
    first = stream.getvalue()
    clock.now += 1
    progress.update(Counters(), 2)
    second = stream.getvalue()[len(first):]
    assert len(second) == len(first)


def test_format_duration() -> None:
    assert format_duration(0) == "0:00"
    assert format_duration(75) == "1:15"
    assert format_duration(3 * 3600 + 5) == "3:00:05"


def test_summary_line_is_one_line_of_json_in_order() -> None:
    line = summary_line(command="backfill", fetched=3, note="two\nlines", path=io)
    assert "\n" not in line
    decoded = json.loads(line)
    assert list(decoded) == ["command", "fetched", "note", "path"]
    assert decoded["note"] == "two\nlines"
    assert decoded["fetched"] == 3


def test_lazy_progress_makes_its_bar_on_the_first_update_with_that_total() -> None:
    from hyperlake.net.progress import Counters, LazyProgress

    progress = LazyProgress("job")
    progress.close()  # nothing drawn yet: closing is harmless
    assert progress.bar is None
    progress(40, Counters(fetched=3), 3)
    assert progress.bar is not None and progress.bar.total == 40
    first = progress.bar
    progress(40, Counters(fetched=5), 5)
    assert progress.bar is first
    progress.close()
