"""Everything the streamer writes, from one thread: checkpoint parts, ledger entries,
the optional CSV files and the status file.

Bars land as checkpoint parts of the series ``candles/stream/<market>/<interval>`` in
the existing contract (a part's name states the buckets it settles: each a row or an
empty bucket the stream saw in full), so compaction, verify, sql and the loaders take
them as they take any source's. Live bars go to ``job-<session>/live``, REST repairs
to ``job-<session>/repair`` (their rows keep the source they came from). Only the
streamer writes these series, and it writes them from this one thread, so their
ledgers are never edited twice at once; ``hyperlake compact`` may consume the parts
meanwhile (it lists them once and deletes only what it read).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from hyperlake.lake.checkpoints import Series, ShardWriter
from hyperlake.lake.ledger import Failure
from hyperlake.lake.paths import LakePaths, SeriesKey, encode_interval, encode_market
from hyperlake.lake.ranges import Span
from hyperlake.lake.store import Location
from hyperlake.pipelines.stream.trades import Trade
from hyperlake.schemas.candles import CandleRow, candle_table
from hyperlake.schemas.records import rows_table
from hyperlake.schemas.times import utc_datetime
from hyperlake.schemas.trades import TRADE_SCHEMA
from hyperlake.schemas.vocabulary import Dataset

#: The series source of bars built from the live trade stream.
STREAM = "stream"
CSV_HEADER = b"Datetime,Open,High,Low,Close,Volume\n"
TRADE_FIELDS = ("time", "tid", "px", "sz", "side", "hash", "fetched_at")


class StreamSink:
    def __init__(self, paths: LakePaths, session_ms: int, csv_dir: Path | None) -> None:
        self.paths = paths
        self.job = Span(session_ms, session_ms)
        self.csv_dir = csv_dir
        self._series: dict[tuple[Dataset, str, str], Series] = {}

    def series(self, coin: str, interval: str, dataset: Dataset = "candles") -> Series:
        found = self._series.get((dataset, coin, interval))
        if found is None:
            found = self._series[(dataset, coin, interval)] = Series(
                self.paths, SeriesKey(dataset, STREAM, coin, interval))
        return found

    def commit_bars(self, coin: str, interval: str, span: Span,
                    rows: Sequence[CandleRow]) -> None:
        """Settle ``span``: its bars, every other bucket in it empty."""
        self._commit(coin, interval, "live", span, candle_table(coin, interval, STREAM,
                                                                list(rows)))
        if self.csv_dir is not None and rows:
            self._append_csv(coin, interval, rows)

    def commit_repair(self, coin: str, interval: str, source: str, window: Span,
                      rows: Sequence[CandleRow], failures: Sequence[Failure],
                      provisional: Sequence[Failure]) -> None:
        table = candle_table(coin, interval, source, list(rows))
        self._commit(coin, interval, "repair", window, table, failures, provisional)
        if self.csv_dir is not None and rows:
            self._append_csv(coin, interval, rows)

    def commit_trades(self, coin: str, span: Span, trades: Sequence[Trade],
                      fetched_at: int) -> None:
        """The trades of ``span`` (every trade of it: the stream saw it in full)."""
        series = self.trade_series(coin)
        rows = [(t.time, t.tid, t.px, t.sz, t.side, t.hash, fetched_at) for t in trades]
        table = rows_table(TRADE_SCHEMA, TRADE_FIELDS, rows, market=coin, source=STREAM)
        writer = ShardWriter(series, series.job_folder(self.job) / "live")
        try:
            writer.commit(span, table, [])
        except FileNotFoundError:  # compaction removed the emptied job folder under us
            writer.commit(span, table, [])

    def trade_series(self, coin: str) -> Series:
        return self.series(coin, "", dataset="trades")

    def record_gaps(self, coin: str, interval: str, failures: Sequence[Failure]) -> None:
        """Spans nothing here can settle: in the ledger, for verify and a batch run."""
        for failure in failures:
            self._commit(coin, interval, "repair", failure.span,
                         candle_table(coin, interval, STREAM, []), [failure])

    def _commit(self, coin: str, interval: str, folder: str, span: Span, table: Any,
                failures: Sequence[Failure] = (),
                provisional: Sequence[Failure] = ()) -> None:
        series = self.series(coin, interval)
        writer = ShardWriter(series, series.job_folder(self.job) / folder)
        try:
            writer.commit(span, table, failures, provisional)
        except FileNotFoundError:
            # compaction removed the emptied job folder under us: make it again
            writer.commit(span, table, failures, provisional)

    def _append_csv(self, coin: str, interval: str, rows: Sequence[CandleRow]) -> None:
        """Whole rows only: one write under an exclusive lock, then fsync, so a reader
        tailing the file never sees half a line, and a crash leaves whole rows."""
        assert self.csv_dir is not None
        path = self.csv_dir / f"{encode_market(coin)}_{encode_interval(interval)}.csv"
        lines = b"".join(
            f"{utc_datetime(r.t):%Y-%m-%d %H:%M:%S},{r.o!r},{r.h!r},{r.l!r},{r.c!r},{r.v!r}\n"
            .encode() for r in rows)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size == 0:
                lines = CSV_HEADER + lines
            os.write(fd, lines)
            os.fsync(fd)
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def write_status(self, status: dict[str, Any]) -> Location:
        path = self.paths.stream_status
        self.paths.store.put(path, orjson.dumps(status, option=orjson.OPT_INDENT_2))
        return path
