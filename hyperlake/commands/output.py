"""What a command prints while it works and when it is done.

A backfill can run for hours; on a terminal the user wants one live line (bar,
done/total, rate, ETA, what was fetched, empty, retried or failed), redrawn in place.
Piped into a file or a script the same line is noise, so it is drawn only when
standard error is a terminal, and ``summary_line`` gives ``--json`` callers one
parseable line. The bar is ``rich``'s (a well-kept library: redraw throttling,
terminal width, ETA); this module only says what it shows. Commands import it when
they run, never at start-up.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from hyperlake.commands.jsonline import summary_line
from hyperlake.pipelines.head import GROSS_SKEW_MS

if TYPE_CHECKING:
    from hyperlake.pipelines.runner import Counters

__all__ = ["ItemProgress", "LaneProgress", "ProgressBar", "counts_text", "head_notes",
           "summary_line"]


def counts_text(counters: Counters) -> str:
    return (f"fetched {counters.fetched} empty {counters.empty} "
            f"retried {counters.retried} failed {counters.failed}")


def head_notes(provisional: int, unit: str, skew_ms: int, source: str) -> list[str]:
    """What a run says about the head of the source's data: provisional buckets (normal
    near "now", re-checked by the next run) and a gross difference between clocks."""
    notes = []
    if abs(skew_ms) >= GROSS_SKEW_MS:
        side = "ahead of" if skew_ms > 0 else "behind"
        notes.append(f"  warning: this machine's clock is {_duration(abs(skew_ms))} {side} "
                     f"{source}'s (its Date header); answers after the earlier clock were "
                     "kept provisional — check the clock (NTP) if that is yours")
    if provisional:
        notes.append(f"  {provisional} {unit} near the head of {source}'s data are provisional"
                     " (empty or not closed yet); the next run checks them again")
    return notes


def _duration(ms: int) -> str:
    seconds = ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class RateColumn(ProgressColumn):
    """Requests per second since the bar started."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        requests = float(task.fields.get("requests", 0))
        return Text(f"{requests / elapsed if elapsed > 0 else 0.0:,.1f} req/s")


class ProgressBar:
    """A progress callback, ``bar(total, counters, done)``: the bar is made on the first
    call, when the total (known only once the job is planned) arrives."""

    def __init__(self, label: str, *, stream: TextIO | None = None,
                 enabled: bool | None = None, width: int | None = None) -> None:
        self.label = label
        self.width = width  # None: the terminal's
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, total: int, counters: Counters, done: int) -> None:
        if not self.enabled:
            return
        if self.progress is None or self._task is None:
            self.progress, self._task = self._start(total)
        self.progress.update(self._task, total=max(0, total), completed=min(done, total),
                             requests=counters.requests, counts=counts_text(counters))

    def _start(self, total: int) -> tuple[Progress, TaskID]:
        console = Console(file=self.stream, force_terminal=True, highlight=False,
                          width=self.width)
        progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
            TaskProgressColumn(), RateColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("| {task.fields[counts]}"), console=console, refresh_per_second=5)
        task = progress.add_task(self.label, total=max(0, total), requests=0, counts="")
        progress.start()
        return progress, task

    def close(self) -> None:
        """Draw the last state and end the line (harmless when nothing was drawn)."""
        if self.progress is not None:
            self.progress.stop()


class ItemProgress:
    """A bar over a known number of items (charts, files): done/total and ETA, drawn on
    standard error when it is a terminal. ``line`` prints a result or a skip without
    tearing the bar: through the bar's console while it is drawn on the same terminal,
    plainly otherwise (a piped stdout gets clean lines)."""

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None,
                 enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        console = Console(file=self.stream, force_terminal=self.enabled, highlight=False)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
            TaskProgressColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
            refresh_per_second=5, disable=not self.enabled, redirect_stdout=False,
            redirect_stderr=False)
        self.task = self.progress.add_task(label, total=total)

    def __enter__(self) -> ItemProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def advance(self) -> None:
        self.progress.advance(self.task)

    def line(self, text: str, *, err: bool = False) -> None:
        target = sys.stderr if err else sys.stdout
        if self.enabled and (err or target.isatty()):
            self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=target, flush=True)


class LaneProgress:
    """Bars for a run of many series at once (``hyperlake update``): one per lane (a
    source, or funding), each the sum of its series' progress, drawn on standard error
    when it is a terminal. ``progress(lane, series, done)`` is the pipeline's callback."""

    def __init__(self, totals: dict[str, int], *, stream: TextIO | None = None,
                 enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = (self.stream.isatty() if enabled is None else enabled) and any(
            totals.values())
        console = Console(file=self.stream, force_terminal=self.enabled, highlight=False)
        self.progress = Progress(
            TextColumn("{task.description:<12}"), BarColumn(bar_width=24),
            MofNCompleteColumn(), TaskProgressColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), TextColumn("{task.fields[series]}"), console=console,
            refresh_per_second=5, disable=not self.enabled)
        self.tasks = {lane: self.progress.add_task(lane, total=max(1, total), series="")
                      for lane, total in totals.items() if total}
        self._done: dict[str, dict[object, int]] = {lane: {} for lane in self.tasks}
        if self.enabled:
            self.progress.start()

    def __call__(self, lane: str, series: object, done: int) -> None:
        if lane not in self.tasks:
            return
        per_series = self._done[lane]
        per_series[series] = done
        label = getattr(series, "describe", None)
        self.progress.update(self.tasks[lane], completed=sum(per_series.values()),
                             series=label() if callable(label) else "")

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()
