"""Progress on a terminal, a JSON line for scripts.

A backfill can run for hours; on a terminal the user wants one live line (bar, rate,
ETA, what was fetched, empty, retried or failed), redrawn in place a few times a
second. Piped into a file or a script the same line is noise, so it is off unless
the stream is a TTY, and ``summary_line`` gives ``--json`` callers one parseable line.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

#: Seconds between redraws: at most 5 a second.
REDRAW_INTERVAL = 0.2
BAR_WIDTH = 24


@dataclass
class Counters:
    """What happened to the requests of a run so far."""

    fetched: int = 0
    empty: int = 0
    retried: int = 0
    failed: int = 0
    requests: int = 0
    cpu_seconds: float = 0.0  # client CPU spent by the workers doing it

    def merge(self, other: Counters) -> None:
        """Add ``other``'s counts into this one (e.g. one worker's into the run's)."""
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


def format_duration(seconds: float) -> str:
    """H:MM:SS, or M:SS under an hour."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _bar(fraction: float) -> str:
    filled = round(fraction * BAR_WIDTH)
    return "#" * filled + "-" * (BAR_WIDTH - filled)


def _eta(done: int, total: int, elapsed: float) -> str:
    if done <= 0 or elapsed <= 0:
        return "--:--"
    return format_duration((total - done) * elapsed / done)


class Progress:
    """One self-overwriting status line on a terminal; silent elsewhere."""

    def __init__(self, total: int, label: str, *, stream: TextIO = sys.stderr,
                 enabled: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = max(0, total)
        self.label = label
        self.enabled = stream.isatty() if enabled is None else enabled
        self._stream = stream
        self._clock = clock
        self._started = clock()
        self._last_drawn_at: float | None = None
        self._last_width = 0
        self._pending: tuple[Counters, int] | None = None

    def update(self, counters: Counters, done: int) -> None:
        """Redraw the line, unless it was drawn less than 0.2 s ago."""
        if not self.enabled:
            return
        now = self._clock()
        if self._last_drawn_at is not None and now - self._last_drawn_at < REDRAW_INTERVAL:
            self._pending = (Counters(**vars(counters)), done)
            return
        self._draw(counters, done, now)

    def close(self) -> None:
        """Draw the latest state if a redraw was skipped, then end the line."""
        if not self.enabled:
            return
        if self._pending is not None:
            self._draw(*self._pending, self._clock())
        if self._last_drawn_at is not None:
            self._stream.write("\n")
            self._stream.flush()

    def render(self, counters: Counters, done: int, now: float) -> str:
        """The status line for this state, without the carriage return."""
        done = min(max(done, 0), self.total)
        elapsed = now - self._started
        fraction = done / self.total if self.total else 1.0
        rate = counters.requests / elapsed if elapsed > 0 else 0.0
        return (f"{self.label} [{_bar(fraction)}] {done}/{self.total} {fraction:6.1%} "
                f"{rate:.1f} req/s ETA {_eta(done, self.total, elapsed)} | "
                f"fetched {counters.fetched} empty {counters.empty} "
                f"retried {counters.retried} failed {counters.failed}")

    def _draw(self, counters: Counters, done: int, now: float) -> None:
        line = self.render(counters, done, now)
        padding = " " * max(0, self._last_width - len(line))  # wipe a longer old line
        self._stream.write(f"\r{line}{padding}")
        self._stream.flush()
        self._last_width = len(line)
        self._last_drawn_at = now
        self._pending = None


def summary_line(**fields: object) -> str:
    """The run's summary as one line of JSON, keys in the order given (for ``--json``).

    Values that JSON cannot hold (paths, dates) are written as their ``str``.
    """
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"), default=str,
                      allow_nan=False)


class LazyProgress:
    """A progress callback whose bar is made on the first update, when the total
    (known only once the job is planned) arrives: ``on_progress(total, counters, done)``."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Progress | None = None

    def __call__(self, total: int, counters: Counters, done: int) -> None:
        if self.bar is None:
            self.bar = Progress(total, self.label)
        self.bar.update(counters, done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
