"""``hyperlake stream``: live trades → exact bars in the lake, for as long as it runs.

The parts, and who does what:

- ``feed`` keeps the WebSocket connections up and hands every frame over;
- ``trades``, ``dedupe`` and ``bars`` turn trades into bars by exchange time, each trade
  counted once, a bar closing at its bucket's end plus the grace (late trades correct
  it); ``coverage`` knows which stretches of each coin were seen in full;
- every tick (a few a second) each (coin, interval) series *decides* the buckets whose
  deadline has passed: those seen in full are written as one checkpoint part (their
  bars; the others empty), the rest — across a disconnect, at the start of a run,
  during downtime — wait in a repair queue; a bar closed before its bucket was
  decided is only written if its bucket was seen in full;
- once settled, queued buckets are fetched from REST (``repair``) and written with the
  source they came from; what no source serves goes to the gap ledger;
- one thread writes every file (``sink``); another does the REST repairs; the event
  loop never blocks on either.

Durability: a decided bucket reaches disk within a tick of its deadline. A ``kill -9``
loses only what was not decided yet: at the next start, every bucket of the stream's
series that no part covers (within ``RESUME_MS``) is queued for repair, so nothing
closed is lost and nothing is written twice over (compaction keeps one row per key).

Compaction runs beside the stream: every ``compact_every_s`` the session tries the
lake's writer lock without waiting and, when it is free, compacts in a worker thread
while the stream goes on (``hyperlake compact`` from cron does the same from outside).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hyperlake.lake.ledger import Failure
from hyperlake.lake.lock import LakeBusy, WriterLock
from hyperlake.lake.paths import LakePaths
from hyperlake.lake.ranges import RangeSet, Span, buckets_in
from hyperlake.lake.store import Location
from hyperlake.net.retry import TerminalError
from hyperlake.pipelines.compact import CompactJob, run_compact
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.pipelines.stream.bars import Bar, BarAggregator
from hyperlake.pipelines.stream.coverage import Coverage
from hyperlake.pipelines.stream.dedupe import TradeDeduper
from hyperlake.pipelines.stream.feed import Connection, FeedSettings, shares
from hyperlake.pipelines.stream.repair import Repaired, Repairer
from hyperlake.pipelines.stream.sink import StreamSink
from hyperlake.pipelines.stream.trades import NATIVE_SCANNER, Trade, TradeBatch
from hyperlake.schemas.intervals import DAY_MS, bucket_start, first_open, next_bucket
from hyperlake.schemas.times import format_instant
from hyperlake.schemas.vocabulary import Dataset

#: How far back a start repairs what the stream's series lack (older: a batch job).
RESUME_MS = 3 * DAY_MS
#: A repair that failed (it is in the gap ledger meanwhile) is tried again after this.
RETRY_AFTER_MS = 5 * 60_000
TICK_S = 0.2
STATUS_EVERY_S = 5.0


@dataclass(frozen=True, kw_only=True)
class StreamJob:
    coins: tuple[str, ...]  # canonical names
    intervals: tuple[str, ...]
    lake: Location
    grace_ms: int = 2_000
    csv_dir: Path | None = None
    compact_every_s: float = 300.0  # 0: never
    json_log: bool = False
    keep_trades: bool = False  # also the raw trades, dataset trades/market=…/date=…


def split_decided(window: Span, certain: RangeSet, interval: str) -> tuple[list[Span],
                                                                            RangeSet]:
    """The buckets of ``window`` (aligned) wholly inside ``certain``, as runs, and the
    rest of the window."""
    runs = []
    for span in certain.intersect(RangeSet([window])):
        start, end = first_open(span.start, interval), bucket_start(span.end, interval)
        if end > start:
            runs.append(Span(start, end))
    return runs, RangeSet([window]).subtract(RangeSet(runs))


@dataclass
class _Series:
    coin: str
    interval: str
    decided_to: int  # buckets opening before this are decided
    pending: dict[int, Any] = field(default_factory=dict)  # closed bars not decided yet
    repair: RangeSet = field(default_factory=RangeSet)  # uncertain, to fetch once settled
    retry: list[tuple[int, RangeSet]] = field(default_factory=list)  # (not before, spans)


class StreamSession:
    def __init__(self, job: StreamJob, settings: SourceSettings, log: TextIO = sys.stderr,
                 feed_settings: FeedSettings | None = None) -> None:
        self.job = job
        self.settings = settings
        self.clock: Callable[[], int] = settings.now_ms
        self.paths = LakePaths(job.lake)
        self.log = log
        # A frame is the only proof that everything sent before it has arrived: a quiet
        # coin's buckets are decided on the pong of a ping, so ping within the grace.
        ping_s = min(20.0, settings.ws_stale_s / 2, max(0.25, job.grace_ms / 4000))
        self.feed_settings = feed_settings or FeedSettings(
            settings.ws_url, ping_s=ping_s, stale_s=settings.ws_stale_s)
        now = self.clock()
        self.started_ms = now
        self.sink = StreamSink(self.paths, now, job.csv_dir)
        self.deduper = TradeDeduper()
        self.bars = BarAggregator(job.intervals, grace_ms=job.grace_ms, start_ms=now)
        self.coverage = Coverage(job.grace_ms)
        self.series = {(c, i): _Series(c, i, bucket_start(now, i))
                       for c in job.coins for i in job.intervals}
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-writer")
        self.fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-repair")
        self.repairer = Repairer(settings, job.lake)
        self.repairing: list[tuple[_Series, Future[list[Repaired]]]] = []
        self.compacting: Future[None] | None = None
        self.connections: list[Connection] = []
        self.coin_connection: dict[str, int] = {}
        self.counts: Counter[str] = Counter()
        self.last_frame_ms: dict[int, int] = {}
        self.last_trade_ms: dict[str, int] = {}
        self.last_bar_ms: dict[str, int] = {}
        self.kept_trades: dict[str, list[Trade]] = {coin: [] for coin in job.coins}
        self.trades_to: dict[str, int] = {coin: 0 for coin in job.coins}
        self.write_error: BaseException | None = None

    # -- start ----------------------------------------------------------------------

    def resume(self) -> None:
        """Queue for repair every bucket the stream's series lack from their first
        coverage (at most ``RESUME_MS`` back) to now: downtime, a kill before a
        repair, a ledger entry of an earlier run."""
        now = self.clock()
        for state in self.series.values():
            series = self.sink.series(state.coin, state.interval)
            done = series.done()
            if not done:
                continue
            start = max(done.spans[0].start, bucket_start(now - RESUME_MS, state.interval))
            holes = RangeSet([Span(start, state.decided_to)]).subtract(done)
            state.repair = state.repair.union(holes)
            if holes:
                self._event("resume", coin=state.coin, interval=state.interval,
                            buckets_to_repair=buckets_in(holes, state.interval),
                            since=format_instant(start))

    # -- the feed's events ------------------------------------------------------------

    def connected(self, connection: int, coins: Sequence[str]) -> None:
        self.last_frame_ms[connection] = self.clock()
        self._event("connected", connection=connection, coins=len(coins))

    def subscribed(self, coin: str) -> None:
        self.coverage.subscribed(coin, self.clock())

    def frame_seen(self, connection: int) -> None:
        self.last_frame_ms[connection] = self.clock()

    def trades(self, batch: TradeBatch, replay_of: str | None) -> None:
        coin = batch.coin or replay_of
        if coin is None:
            return
        before = self.deduper.duplicates
        kept = self.deduper.admit(batch) if len(batch) else batch
        if replay_of is not None:
            self.coverage.replayed(coin, min(batch.times) if len(batch) else None,
                                   overlapped=self.deduper.duplicates > before)
        if len(kept):
            if self.job.keep_trades:
                self.kept_trades[coin].extend(kept.records)
            self.coverage.traded(coin, kept.latest)
            self.last_trade_ms[coin] = max(kept.latest, self.last_trade_ms.get(coin, 0))
            self.bars.add(kept)
            self.counts["trades"] += len(kept)

    def lost(self, connection: int, coins: Sequence[str], reason: str) -> None:
        last = self.last_frame_ms.get(connection, self.clock())
        for coin in coins:
            self.coverage.lost(coin, last)
        self.counts["reconnects"] += 1
        self._event("lost", connection=connection, coins=len(coins), reason=reason)

    def server_error(self, connection: int, text: str) -> None:
        self.counts["server_errors"] += 1
        self._event("server_error", connection=connection, error=text)

    # -- the loop ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self.resume()
        coins = list(self.job.coins)
        self.connections = [Connection(i, share, self.feed_settings, self)
                            for i, share in enumerate(shares(coins))]
        self.coin_connection = {coin: c.index for c in self.connections for coin in c.coins}
        feeds = [asyncio.create_task(c.run(stop)) for c in self.connections]
        last_status = last_compact = time.monotonic()
        try:
            while not stop.is_set():
                _raise_failed(feeds)
                await self.tick()
                now = time.monotonic()
                if now - last_status >= STATUS_EVERY_S:
                    self._submit(self.sink.write_status, self.status())
                    last_status = now
                if self.job.compact_every_s and now - last_compact >= self.job.compact_every_s:
                    self._compact()
                    last_compact = now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=TICK_S)
        finally:
            await asyncio.gather(*feeds, return_exceptions=True)
            await self.tick()
            self._submit(self.sink.write_status, self.status())
            self.shutdown()

    async def tick(self) -> None:
        """Close what is due, decide what can be decided, write it, repair what has
        settled; the writing happens on the writer thread."""
        if self.write_error is not None:
            raise self.write_error
        now = self.clock()
        for bar in self.bars.close_due(now):
            self._take(bar, now)
        for coin, interval, open_ms in self.bars.take_missed():
            self._missed(coin, interval, open_ms)
        for state in self.series.values():
            self._decide(state, min(now, self._heard_ms(state.coin)))
        if self.job.keep_trades:
            for coin in self.job.coins:
                self._decide_trades(coin, min(now, self._heard_ms(coin)), now)
        self._collect_repairs()
        self._start_repairs(now)

    def _take(self, bar: Bar, now: int) -> None:
        state = self.series.get((bar.coin, bar.interval))
        if state is None:
            return
        self.last_bar_ms[bar.coin] = max(bar.row.t, self.last_bar_ms.get(bar.coin, 0))
        if bar.revision:
            self.counts["corrections"] += 1
        if bar.row.t >= state.decided_to:
            state.pending[bar.row.t] = bar.row
            return
        # a correction of a decided bucket: only if the stream saw that bucket in full
        bucket = Span(bar.row.t, bar.row.t_close + 1)
        if self.coverage.certain(bar.coin, now).contains(bucket):
            self._submit(self.sink.commit_bars, bar.coin, bar.interval, bucket, [bar.row])

    def _heard_ms(self, coin: str) -> int:
        """When the connection carrying ``coin`` last delivered a frame (0: never).
        Frames arrive in order, so every trade sent before that has been seen; after
        it, nothing is known yet — a connection gone silent must not turn buckets it
        never delivered into "seen in full, empty"."""
        connection = self.coin_connection.get(coin)
        return 0 if connection is None else self.last_frame_ms.get(connection, 0)

    def _missed(self, coin: str, interval: str, open_ms: int) -> None:
        """A trade came too late for its bar (the bucket was decided and dropped long
        ago): the bar written lacks it, so the bucket is repaired from REST."""
        state = self.series.get((coin, interval))
        if state is not None:
            bucket = Span(open_ms, next_bucket(open_ms, interval))
            state.repair = state.repair.union(RangeSet([bucket]))
            self.counts["too_late_buckets"] += 1

    def _decide(self, state: _Series, now: int) -> None:
        """Decide the buckets whose deadline has passed by ``now`` (the latest instant
        the coin's connection vouches for)."""
        closable = bucket_start(now - self.job.grace_ms, state.interval)
        if closable <= state.decided_to:
            return
        window = Span(state.decided_to, closable)
        runs, uncertain = split_decided(window, self.coverage.certain(state.coin, now),
                                        state.interval)
        for run in runs:
            rows = [state.pending[t] for t in sorted(state.pending) if run.start <= t < run.end]
            self._submit(self.sink.commit_bars, state.coin, state.interval, run, rows)
            self.counts["bars"] += len(rows)
        state.pending = {t: row for t, row in state.pending.items() if t >= closable}
        state.repair = state.repair.union(uncertain)
        state.decided_to = closable

    def _decide_trades(self, coin: str, heard: int, now: int) -> None:
        """Write the trades up to what the connection vouches for, in the spans seen in
        full (elsewhere a trade file would claim a completeness it does not have; the
        exchange keeps no trade history to repair it from)."""
        bound = heard - self.job.grace_ms
        start = self.trades_to[coin]
        if bound <= start:
            return
        buffered = self.kept_trades[coin]
        for run in self.coverage.certain(coin, now).intersect(RangeSet([Span(start, bound)])):
            trades = [t for t in buffered if run.start <= t.time < run.end]
            self._submit(self.sink.commit_trades, coin, run, trades, now)
        self.kept_trades[coin] = [t for t in buffered if t.time >= bound]
        self.trades_to[coin] = bound

    # -- repairs ----------------------------------------------------------------------

    def _start_repairs(self, now: int) -> None:
        if self.repairing:
            return  # one series at a time: the REST budget is shared anyway
        settled = Span(0, now - int(self.settings.settle_s * 1000))
        for state in self.series.values():
            again = [spans for due, spans in state.retry if due <= now]
            if again:
                state.retry = [(due, spans) for due, spans in state.retry if due > now]
                state.repair = state.repair.union(RangeSet(s for r in again for s in r))
            due = state.repair.intersect(RangeSet([settled]))
            due = RangeSet(Span(s.start, bucket_start(s.end, state.interval)) for s in due)
            if not due:
                continue
            state.repair = state.repair.subtract(due)
            future = self.fetcher.submit(self._repair, state.coin, state.interval, due, now)
            self.repairing.append((state, future))
            return

    def _repair(self, coin: str, interval: str, spans: RangeSet, now: int) -> list[Repaired]:
        """On the repair thread. A source that refuses outright (a wrong key, say)
        leaves its windows in the gap ledger, saying why; the stream goes on."""
        fetch, unserved = self.repairer.plan(interval, spans, now)
        repaired = []
        for source, window in fetch:
            try:
                repaired.append(self.repairer.fetch(coin, interval, source, window))
            except TerminalError as exc:
                unserved.append(Failure(window, str(exc)))
        if unserved:
            self._submit(self.sink.record_gaps, coin, interval, unserved)
            self.counts["ledgered"] += len(unserved)
            self._event("ledgered", coin=coin, interval=interval,
                        spans=[_span_text(f.span) for f in unserved][:5],
                        reason=unserved[0].reason)
        return repaired

    def _collect_repairs(self) -> None:
        still = []
        for state, future in self.repairing:
            if not future.done():
                still.append((state, future))
                continue
            for answer in future.result():
                self._submit(self.sink.commit_repair, state.coin, state.interval,
                             answer.source, answer.window, answer.rows, answer.failures,
                             answer.provisional)
                # not settled yet at the source: ask again later; failed (in the ledger
                # now): try again after a pause, the ledger entry goes when it lands
                state.repair = state.repair.union(RangeSet(p.span for p in answer.provisional))
                if answer.failures:
                    state.retry.append((self.clock() + RETRY_AFTER_MS,
                                        RangeSet(f.span for f in answer.failures)))
                self.counts["repaired_bars"] += len(answer.rows)
                self.counts["repair_failures"] += len(answer.failures)
                self._event("repaired", coin=state.coin, interval=state.interval,
                            source=answer.source, window=_span_text(answer.window),
                            bars=len(answer.rows), failed=len(answer.failures),
                            provisional=len(answer.provisional))
        self.repairing = still

    # -- writing, compaction, health ----------------------------------------------------

    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        def run() -> None:
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the loop, re-raised there
                self.write_error = exc

        self.writer.submit(run)

    def _compact(self) -> None:
        if self.compacting is not None and not self.compacting.done():
            return

        def compact() -> None:
            try:
                datasets: tuple[Dataset, ...] = (("candles", "trades")
                                                 if self.job.keep_trades else ("candles",))
                stats, seconds = run_compact(CompactJob(lake=self.job.lake,
                                                        datasets=datasets))
            except LakeBusy:
                return  # another writer has the lake: next time
            self.counts["compactions"] += 1
            self._event("compacted", parts=stats.parts_consumed, seconds=round(seconds, 2))

        self.compacting = self.fetcher.submit(compact)

    def status(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "pid": os.getpid(), "now": format_instant(now),
            "started": format_instant(self.started_ms),
            "frames_read_by": "native scanner" if NATIVE_SCANNER else "msgspec",
            "last_frame": format_instant(max(self.last_frame_ms.values(), default=0)),
            "connections": len(self.connections),
            "reconnects": self.counts["reconnects"],
            "late_trades": sum(self.bars.late_trades.values()),
            "too_late_trades": sum(self.bars.too_late_trades.values()),
            "duplicates": self.deduper.duplicates, "trades": self.counts["trades"],
            "bars": self.counts["bars"], "corrections": self.counts["corrections"],
            "repaired_bars": self.counts["repaired_bars"],
            "awaiting_repair": {f"{s.coin} {s.interval}": buckets_in(s.repair, s.interval)
                                for s in self.series.values() if s.repair},
            "coins": {coin: {"last_trade": _instant(self.last_trade_ms.get(coin)),
                             "last_bar": _instant(self.last_bar_ms.get(coin)),
                             "lag_s": round((now - self.last_trade_ms[coin]) / 1000, 3)
                             if coin in self.last_trade_ms else None}
                      for coin in self.job.coins},
        }

    def shutdown(self) -> None:
        for future in (f for _, f in self.repairing):
            future.cancel()
        self.fetcher.shutdown(wait=True, cancel_futures=True)
        self.writer.shutdown(wait=True)
        self.repairer.close()
        if self.write_error is not None:
            raise self.write_error

    def _event(self, kind: str, **fields: Any) -> None:
        if self.job.json_log:
            print(json.dumps({"event": kind, "at": format_instant(self.clock()), **fields},
                             default=str), file=self.log, flush=True)
        elif kind in ("connected", "lost", "repaired", "ledgered", "resume", "server_error",
                      "compacted"):
            detail = " ".join(f"{k}={v}" for k, v in fields.items())
            print(f"hyperlake stream: {kind} {detail}", file=self.log, flush=True)


def _raise_failed(tasks: list[asyncio.Task[None]]) -> None:
    """A connection task that died of an error (not of the network: it retries that)
    is a bug: stop the stream with it rather than stream on without those coins."""
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


def stream_lock(lake: Location) -> WriterLock:
    """One streamer per lake (it does not take the writer lock: it writes only its own
    series, beside the other stages)."""
    return LakePaths(lake).lock("stream")


def _span_text(span: Span) -> str:
    return f"{format_instant(span.start)}/{format_instant(span.end)}"


def _instant(ms: int | None) -> str | None:
    return None if ms is None else format_instant(ms)


