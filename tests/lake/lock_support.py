"""Another process holding a lake's writer lock (the lock is re-entrant within a
process, so a test's own hold would be shared, not refused)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

HOLDER = """
import sys
from pathlib import Path
from hyperlake.lake.lock import LakeLock
LakeLock(Path(sys.argv[1])).acquire()
print("held", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def _holding(code: str, argument: str,
             env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """A child running ``code`` until it says "held", kept until the block ends (its
    stdin closed) or it is killed."""
    process = subprocess.Popen([sys.executable, "-c", code, argument], env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdin is not None and process.stdout is not None
    try:
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        if process.poll() is None:
            process.stdin.close()
        process.wait(timeout=30)
        process.stdout.close()


@contextlib.contextmanager
def held_elsewhere(lock_file: Path) -> Iterator[subprocess.Popen[str]]:
    """``lock_file`` locked by a child process until the block ends (or it is killed)."""
    with _holding(HOLDER, str(lock_file)) as process:
        yield process


LAKE_HOLDER = """
import sys
from hyperlake.lake.checkpoints import Series, ShardWriter
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import Span
from hyperlake.lake.store import parse_location
from hyperlake.schemas.candles import CandleRow, candle_table
paths = LakePaths(parse_location(sys.argv[1]))
lock = paths.writer_lock()
lock.acquire()
series = Series(paths, SeriesKey("candles", "hyperliquid", "BTC", "1h"))
t = 1_774_828_800_000  # 2026-03-30T00:00:00Z
row = CandleRow(t, t + 3_599_999, 1.0, 2.0, 0.5, 1.5, 3.0, None, 4, True, t + 7_200_000)
ShardWriter(series, series.job_folder(Span(t, t + 3_600_000)) / "shard-000").commit(
    Span(t, t + 3_600_000), candle_table("BTC", "1h", "hyperliquid", [row]), [])
print("held", flush=True)
sys.stdin.read()
lock.release()
"""


@contextlib.contextmanager
def lake_held_elsewhere(root: object,
                        env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """The writer lock (a flock, or a lease on an object store) of the lake at ``root``
    held by a child process that has committed one checkpoint part, until the block
    ends (or the child is killed)."""
    with _holding(LAKE_HOLDER, str(root), env) as process:
        yield process
