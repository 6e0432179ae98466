"""Dwellir's archive: one candle per request, sharded over worker processes.

Each worker owns a contiguous shard of the buckets still missing, keeps ~128
requests in flight over HTTP/2 (pycurl), paces itself with a token bucket so the
workers together match ``--rate``, and commits its contiguous frontier: a part file
covers [frontier, next unfinished bucket), so a ``kill -9`` at any instant loses
only work that was never claimed. A 404 is an empty bucket (covered, never
fabricated); a bucket that keeps failing goes to the gap ledger; an open candle
(``x`` false) is not final: it goes to the provisional ledger, and so does a 404 near
the head of Dwellir's data (``pipelines.head``: judged by the ``Date`` of that very
answer, so an index whose clock is behind ours cannot turn its future into holes).
Only requests for buckets near the head carry a header hook; older answers are final.
"""

from __future__ import annotations

import ctypes
import dataclasses
import heapq
import multiprocessing as mp
import os
import queue as queue_module
import random
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from hyperlake.lake.checkpoints import Series, ShardWriter
from hyperlake.lake.ledger import Failure
from hyperlake.lake.lock import Grant, WorkerHold, WriterLock, held_lock
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import Span
from hyperlake.lake.store import parse_location
from hyperlake.net.curl import Completed, CurlPool, CurlSettings
from hyperlake.net.pacing import InflightWindow, TokenBucket
from hyperlake.net.redact import redact
from hyperlake.net.retry import Backoff, TerminalError, http_date_ms
from hyperlake.pipelines.candles.registry import DWELLIR
from hyperlake.pipelines.head import NOT_CLOSED, NOT_SETTLED, Head, larger_skew, merged
from hyperlake.pipelines.runner import Counters, Report, Work
from hyperlake.schemas.candles import CandleRow, candle_table, parse_candle
from hyperlake.schemas.intervals import FIXED_STEP_MS
from hyperlake.schemas.records import InvalidRecord
from hyperlake.schemas.vocabulary import Source

if TYPE_CHECKING:  # worker processes import this module: keep httpx out of them
    from hyperlake.pipelines.candles.job import CandleJob
    from hyperlake.pipelines.settings import SourceSettings

PENDING, ROW, EMPTY, FAILED, PROVISIONAL = 0, 1, 2, 3, 4
#: Requests for buckets this close to the head read the answer's Date header; older
#: buckets are settled unless the source's clock is further behind (the warm-up tells).
HEAD_GUARD_MS = 6 * 3_600_000
SOURCE: Source = "dwellir"


@dataclass(frozen=True)
class ShardSpec:
    """Everything a worker process needs (pickled to it; never on a command line)."""

    index: int
    segments: tuple[Span, ...]  # contiguous runs of missing buckets, in order
    base_url: str
    api_key: str
    market: str
    interval: str
    rate: float  # requests per second for this worker
    lake_root: str
    job_folder: str
    curl: CurlSettings = field(default_factory=CurlSettings)
    backoff: Backoff = field(default_factory=Backoff)
    flush_buckets: int = 50_000
    flush_seconds: float = 2.0
    lanes: int = 2  # distinct DWSESSION backends to spread over
    parent_pid: int = 0
    now_ms: int | None = None  # our clock, when pinned (else the wall clock)
    settle_ms: int = 300_000  # see ``pipelines.head``
    grant: Grant | None = None  # a cluster task's: checked before each commit


@dataclass
class ShardResult:
    index: int
    counters: Counters
    error: str | None = None
    terminal: bool = False
    errno: int | None = None  # the system's error number, when the shard failed on one


class _Segment:
    """Per-bucket status and pending rows of one contiguous run of buckets."""

    def __init__(self, span: Span, step: int) -> None:
        self.span = span
        self.step = step
        self.size = (span.end - span.start) // step
        self.status = bytearray(self.size)
        self.rows: dict[int, CandleRow] = {}
        self.failures: dict[int, str] = {}  # why a bucket failed, or is provisional
        self.frontier = 0  # buckets before it are committed
        self.submitted = 0  # buckets before it were handed to the network at least once
        self._prefix_end = 0  # buckets before it are finished (it only ever grows)

    def open_ms(self, offset: int) -> int:
        return self.span.start + offset * self.step

    def finished_prefix(self) -> int:
        """End of the run of finished buckets starting at the frontier."""
        end, status = self._prefix_end, self.status
        while end < self.size and status[end] != PENDING:
            end += 1
        self._prefix_end = end
        return end


_MINUTE_PREFIX: list[Any] = [None, ""]  # (minute number, "2026-03-30T23:00:")


def iso_second(ms: int) -> str:
    """Epoch ms (whole seconds) -> 2026-03-30T23:00:00Z, without datetime's overhead:
    consecutive buckets share their minute's prefix."""
    minute, second = divmod(ms // 1000, 60)
    if _MINUTE_PREFIX[0] != minute:
        _MINUTE_PREFIX[0] = minute
        _MINUTE_PREFIX[1] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
    return f"{_MINUTE_PREFIX[1]}{second:02d}Z"


class ShardRun:
    """The worker's loop over its segments."""

    def __init__(self, spec: ShardSpec, progress: Any, grant: Grant | None = None) -> None:
        self.spec = spec
        self.progress = progress
        self.step = FIXED_STEP_MS[spec.interval]
        self.segments = [_Segment(s, self.step) for s in spec.segments]
        self.counters = Counters()
        self.rng = random.Random(spec.index * 7919 + os.getpid())
        self.retries: list[tuple[float, int, int, int]] = []  # (due, seq, segment, offset)
        self.attempts: dict[tuple[int, int], int] = {}
        self._seq = 0
        paths = LakePaths(parse_location(spec.lake_root), grant or spec.grant)
        series = Series(paths, SeriesKey("candles", SOURCE, spec.market, spec.interval))
        self.writer = ShardWriter(series, parse_location(spec.job_folder) /
                                  f"shard-{spec.index:03d}")
        self.url_prefix = (f"{spec.base_url.rstrip('/')}/{quote(spec.api_key, safe='')}"
                           f"/v1/candles?market={quote(spec.market, safe='')}"
                           f"&interval={spec.interval}&time=")
        self.cursor = 0  # segment being submitted
        self.cookies: list[str] = []
        self.hook_from = 0  # buckets ending after this carry a header hook (near the head)
        self.window = InflightWindow(spec.curl.inflight)

    def client_ms(self) -> int:
        return self.spec.now_ms if self.spec.now_ms is not None else int(time.time() * 1000)

    def head(self, source_ms: int | None) -> Head:
        return Head(self.client_ms(), source_ms, self.spec.settle_ms)

    # -- main loop -------------------------------------------------------------------

    def run(self) -> Counters:
        pool = CurlPool(self.spec.curl, cleartext_http2=self.url_prefix.startswith("http://"))
        # 50 ms of burst keeps the workers' aggregate honest.
        tokens = TokenBucket(self.spec.rate, max(1.0, self.spec.rate * 0.05))
        last_flush = last_report = time.monotonic()
        cpu_start = time.process_time()
        try:
            self.cookies = self._pick_backends(pool)
            tokens.charge(self.counters.requests)  # the warm-up's requests count too
            while not self._all_committed():
                self._submit(pool, tokens)
                wait = 0.05 if pool.active else min(0.05, max(0.001, self._idle_wait(tokens)))
                for done in pool.poll(wait):
                    self._handle(done)
                now = time.monotonic()
                if now - last_flush >= self.spec.flush_seconds:
                    self._commit_ready(force=True)
                    last_flush = now
                    self._check_parent()
                else:
                    self._commit_ready(force=False)
                if now - last_report >= 0.25:
                    self._report()
                    last_report = now
            self._commit_ready(force=True)
        finally:
            pool.close()
        self.counters.cpu_seconds = time.process_time() - cpu_start
        self._report()
        return self.counters

    def _idle_wait(self, tokens: TokenBucket) -> float:
        waits = [tokens.wait_s()]
        if self.retries:
            waits.append(self.retries[0][0] - time.monotonic())
        return min(waits)

    def _all_committed(self) -> bool:
        return all(seg.frontier == seg.size for seg in self.segments)

    def _check_parent(self) -> None:
        if self.spec.parent_pid and os.getppid() != self.spec.parent_pid:
            raise SystemExit("parent process died; stopping (nothing uncommitted is claimed)")

    # -- submitting ------------------------------------------------------------------

    def _submit(self, pool: CurlPool, tokens: TokenBucket) -> None:
        budget = min(pool.free_slots, int(tokens.available()), self.window.room(pool.active))
        if budget <= 0:
            return
        sent = 0
        now = time.monotonic()
        while sent < budget and self.retries and self.retries[0][0] <= now:
            _, _, seg_index, offset = heapq.heappop(self.retries)
            self._send(pool, seg_index, offset)
            sent += 1
        while sent < budget and self.cursor < len(self.segments):
            seg = self.segments[self.cursor]
            if seg.submitted >= seg.size:
                self.cursor += 1
                continue
            self._send(pool, self.cursor, seg.submitted)
            seg.submitted += 1
            sent += 1
        tokens.charge(sent)

    def _send(self, pool: CurlPool, seg_index: int, offset: int) -> None:
        seg = self.segments[seg_index]
        open_ms = seg.open_ms(offset)
        cookie = self.cookies[offset % len(self.cookies)] if self.cookies else None
        if open_ms + self.step > self.hook_from:  # near the head: keep the Date header
            lines: list[bytes] = []
            pool.submit(self.url_prefix + iso_second(open_ms), (seg_index, offset, lines),
                        [cookie] if cookie else None, lines.append)
        else:
            pool.submit(self.url_prefix + iso_second(open_ms), (seg_index, offset, None),
                        [cookie] if cookie else None)
        self.counters.requests += 1

    def _pick_backends(self, pool: CurlPool) -> list[str]:
        """Warm ``lanes`` sessions, keeping those pinned to distinct backends; their
        Date headers tell how far behind ours Dwellir's clock is (``hook_from``)."""
        found: dict[str, str] = {}
        source_ms: int | None = None
        for _ in range(self.spec.lanes * 3):
            if len(found) >= self.spec.lanes:
                break
            headers: list[bytes] = []
            first = self.segments[0].open_ms(0) if self.segments else 0
            pool.submit(self.url_prefix + iso_second(first), None, None, headers.append)
            self.counters.requests += 1
            while pool.active:
                pool.poll(0.05)
            for line in headers:
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "set-cookie" and value.strip().startswith("DWSESSION="):
                    session = value.strip().split(";", 1)[0]
                    found.setdefault(session, f"Cookie: {session}")
            source_ms = _date_of(headers) or source_ms
        head = self.head(source_ms)
        self._note_skew(head)
        self.hook_from = head.settle_line - HEAD_GUARD_MS
        return list(found.values())

    def _note_skew(self, head: Head) -> None:
        self.counters.clock_skew_ms = larger_skew(self.counters.clock_skew_ms, head.skew_ms)

    # -- answers ---------------------------------------------------------------------

    def _handle(self, done: Completed) -> None:
        if done.tag is None:
            return
        seg_index, offset, headers = done.tag
        seg = self.segments[seg_index]
        # A transport error, or a request libcurl re-sent on a new connection: the
        # connection died under it, so fewer go in flight.
        self.window.completed(done.error is not None or done.reconnected)
        if done.error is not None:
            self._retry(seg, seg_index, offset, done.error, None)
            return
        if done.status == 200:
            self._take_candle(seg, seg_index, offset, done.body)
        elif done.status == 404:
            self._take_empty(seg, offset, headers)
        elif done.status in (408, 429) or done.status >= 500:
            self._retry(seg, seg_index, offset, f"http {done.status}", done.retry_after)
        else:
            raise TerminalError(self._terminal_message(done))

    def _take_candle(self, seg: _Segment, seg_index: int, offset: int, body: bytes) -> None:
        try:
            record = orjson.loads(body)
            row = parse_candle(record, self.spec.market, self.spec.interval,
                               int(time.time() * 1000))
        except (orjson.JSONDecodeError, InvalidRecord, TypeError, AttributeError):
            self._retry(seg, seg_index, offset, "malformed body", None)
            return
        if row.t != seg.open_ms(offset):
            self._retry(seg, seg_index, offset, "candle for another bucket", None)
        elif not row.x:
            self._provisional(seg, offset, NOT_CLOSED)
        else:
            seg.rows[offset] = row
            seg.status[offset] = ROW
            self.counters.fetched += 1

    def _take_empty(self, seg: _Segment, offset: int, headers: list[bytes] | None) -> None:
        """A 404: confirmed empty, unless near the head by this answer's own Date."""
        if headers is not None:
            head = self.head(_date_of(headers))
            self._note_skew(head)
            if seg.open_ms(offset) + self.step > head.settle_line:
                self._provisional(seg, offset, NOT_SETTLED)
                return
        seg.status[offset] = EMPTY
        self.counters.empty += 1

    def _provisional(self, seg: _Segment, offset: int, reason: str) -> None:
        seg.status[offset] = PROVISIONAL
        seg.failures[offset] = reason
        self.counters.provisional += 1

    def _retry(self, seg: _Segment, seg_index: int, offset: int, reason: str,
               retry_after: float | None) -> None:
        key = (seg_index, offset)
        attempt = self.attempts.get(key, 0) + 1
        if self.spec.backoff.exhausted(attempt):
            self.attempts.pop(key, None)
            self._fail(seg, offset, reason)
            return
        self.attempts[key] = attempt
        self.counters.retried += 1
        delay = self.spec.backoff.delay(attempt - 1, retry_after, self.rng)
        self._seq += 1
        heapq.heappush(self.retries, (time.monotonic() + delay, self._seq, seg_index, offset))

    def _fail(self, seg: _Segment, offset: int, reason: str) -> None:
        seg.status[offset] = FAILED
        seg.failures[offset] = reason
        self.counters.failed += 1

    def _terminal_message(self, done: Completed) -> str:
        if done.status == 401:
            return "dwellir rejected the API key (401): check HYPERLAKE_DWELLIR_KEY"
        detail = redact(done.body[:200].decode(errors="replace"), [self.spec.api_key])
        return f"dwellir answered {done.status} for {self.spec.market} {self.spec.interval}: " \
               f"{detail}"

    # -- committing ------------------------------------------------------------------

    def _commit_ready(self, force: bool) -> None:
        for seg in self.segments:
            if seg.frontier == seg.size:
                continue
            end = seg.finished_prefix()
            if end > seg.frontier and (force or end == seg.size
                                       or end - seg.frontier >= self.spec.flush_buckets):
                self._commit(seg, end)
            if end < seg.size:
                return  # later segments wait: commits stay in time order

    def _commit(self, seg: _Segment, end: int) -> None:
        self._check_parent()  # an orphan never commits
        start = seg.frontier
        rows = [seg.rows.pop(i) for i in range(start, end) if seg.status[i] == ROW]
        failures = _status_spans(seg, start, end, FAILED)
        provisional = _status_spans(seg, start, end, PROVISIONAL)
        table = candle_table(self.spec.market, self.spec.interval, SOURCE, rows)
        self.writer.commit(Span(seg.open_ms(start), seg.open_ms(end)), table, failures,
                           provisional)
        for offset in range(start, end):
            seg.failures.pop(offset, None)
        seg.frontier = end

    def _report(self) -> None:
        if self.progress is not None:
            done = sum(seg.frontier for seg in self.segments)
            self.progress.put(("progress", self.spec.index, (self.counters, done)))


def _status_spans(seg: _Segment, start: int, end: int, status: int) -> list[Failure]:
    """The buckets of [start, end) in ``status`` (failed, or provisional), joined into
    ledger spans by reason."""
    offsets = sorted(o for o in seg.failures if start <= o < end and seg.status[o] == status)
    return merged(Failure(Span(seg.open_ms(o), seg.open_ms(o + 1)), seg.failures[o])
                  for o in offsets)


def _date_of(headers: list[bytes]) -> int | None:
    """The server's clock from the raw header lines of an answer (its Date)."""
    for line in headers:
        if line[:5].lower() == b"date:":
            return http_date_ms(line[5:])
    return None


def run_shard(spec: ShardSpec, progress: Any, lake_lock: WorkerHold) -> None:
    """Worker process entry point: results and errors travel back on ``progress``.

    The worker dies with its parent (``PR_SET_PDEATHSIG``), checks its parent before
    every commit, and keeps the run's hold of the lake (``lake_lock``): on disk the
    inherited descriptor of the flock, so even a worker that outlives its parent holds
    the lake locked, and the next run is refused until it is gone; on an object store
    the run's lease grant, checked before every commit, so a worker stops committing
    once its run's lease is lost or taken over. Ctrl-C is the parent's to handle: the
    worker ignores SIGINT (one line, not one traceback per worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(spec.parent_pid)
    grant = lake_lock.adopt()  # a flock's descriptor stays open until this process ends
    try:
        counters = ShardRun(spec, progress, grant).run()
        progress.put(("done", spec.index, ShardResult(spec.index, counters)))
    except TerminalError as exc:
        progress.put(("done", spec.index, ShardResult(spec.index, Counters(), str(exc), True)))
    except OSError as exc:
        message = redact(exc.strerror or str(exc) if exc.errno else str(exc), [spec.api_key])
        progress.put(("done", spec.index, ShardResult(spec.index, Counters(), message, True,
                                                      exc.errno)))


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux), and stop at
    once if the parent is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid and os.getppid() != parent_pid:
        os._exit(1)


_PR_SET_PDEATHSIG = 1


# -- the parent side ------------------------------------------------------------------


def split_shards(segments: list[Span], step: int, workers: int) -> list[tuple[Span, ...]]:
    """Cut the missing segments into ``workers`` contiguous shards of equal bucket count."""
    total = sum(len(s) // step for s in segments)
    if total == 0:
        return []
    workers = max(1, min(workers, total))
    per = -(-total // workers)
    shards: list[tuple[Span, ...]] = []
    current: list[Span] = []
    room = per
    for seg in segments:
        start = seg.start
        while start < seg.end:
            take = min(room, (seg.end - start) // step)
            current.append(Span(start, start + take * step))
            start += take * step
            room -= take
            if room == 0:
                shards.append(tuple(current))
                current, room = [], per
    if current:
        shards.append(tuple(current))
    return shards


def run_shards(specs: list[ShardSpec], on_progress: Any,
               lock: WriterLock) -> list[ShardResult]:
    """Run each shard in a spawned process holding ``lock`` too; ``on_progress(counters,
    done)`` as they go. When this process is interrupted, or its hold of the lake is
    lost (``lock.check``: a lease), the workers are stopped before the exception goes
    on (what they committed stays; the next run resumes)."""
    if not specs:
        return []
    context = mp.get_context("spawn")
    channel = context.Queue()
    inherited = lock.for_workers()
    processes = [context.Process(target=run_shard, args=(spec, channel, inherited),
                                 daemon=True) for spec in specs]
    for process in processes:
        process.start()
    finished = False
    latest: dict[int, tuple[Counters, int]] = {}
    results: dict[int, ShardResult] = {}
    try:
        while len(results) < len(specs):
            lock.check()
            try:
                kind, index, payload = channel.get(timeout=0.5)
            except queue_module.Empty:
                _check_alive(processes, results, specs)
                continue
            if kind == "progress":
                latest[index] = payload
            else:
                results[index] = payload
            total = Counters()
            for counters, _ in latest.values():
                total.merge(counters)
            on_progress(total, sum(done for _, done in latest.values()))
        finished = True
    finally:
        _stop(processes, wait_s=5.0 if finished else 0.0)
        channel.close()
        channel.join_thread()
    return [results[i] for i in sorted(results)]


def _stop(processes: list[Any], wait_s: float) -> None:
    """Join the workers (after ``wait_s`` of grace, terminate the rest)."""
    for process in processes:
        process.join(timeout=wait_s)
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


def _check_alive(processes: list[Any], results: dict[int, ShardResult],
                 specs: list[ShardSpec]) -> None:
    for spec, process in zip(specs, processes, strict=True):
        if spec.index not in results and not process.is_alive() and process.exitcode:
            results[spec.index] = ShardResult(spec.index, Counters(),
                                              f"worker {spec.index} exited with "
                                              f"{process.exitcode}", False)


#: A one-worker job of at most this many buckets runs in this process: a spawned
#: worker costs more CPU to start (~0.3 s: an interpreter, the imports) than a few
#: thousand requests do, and one process drives ~10k requests/s anyway.
INLINE_MAX_BUCKETS = 20_000


class _InlineProgress:
    """What a shard reports on its channel, handed straight to the run's ``report``."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def put(self, message: tuple[str, int, Any]) -> None:
        kind, _, payload = message
        if kind == "progress":
            counters, done = payload
            self.report(counters, done)


def run_inline(spec: ShardSpec, report: Report) -> Counters:
    """One shard in this process (small jobs): the same loop a worker runs."""
    try:
        return ShardRun(spec, _InlineProgress(report)).run()
    except OSError as exc:
        raise TerminalError(redact(str(exc), [spec.api_key])) from None


class DwellirFetch:
    """The runner's fetch: the missing ranges, sharded over ``job.workers`` spawned
    processes (a small one-worker job of ``job.in_process`` runs in this process:
    ``INLINE_MAX_BUCKETS``)."""

    def __init__(self, job: CandleJob, settings: SourceSettings) -> None:
        self.job = job
        self.settings = settings

    def units(self, work: Sequence[Work]) -> int:
        return sum(w.buckets() for w in work)

    def __call__(self, work: Sequence[Work], report: Report) -> Counters:
        key = self.settings.require("HYPERLAKE_DWELLIR_KEY", self.settings.dwellir_key)
        job = self.job
        rate = job.rate or float(DWELLIR.rate(None, None) or 1)
        step = FIXED_STEP_MS[job.interval]
        (item,) = work  # one series per job
        shards = split_shards(list(item.missing), step, job.workers)
        curl = CurlSettings(ca_bundle=self.settings.ca_bundle)
        specs = [
            ShardSpec(index=i, segments=segments, base_url=self.settings.dwellir_url,
                      api_key=key, market=job.market, interval=job.interval,
                      rate=rate / len(shards), lake_root=str(job.lake),
                      job_folder=str(item.series.job_folder(item.want)), curl=curl,
                      backoff=self.settings.backoff(), parent_pid=os.getpid(),
                      now_ms=self.settings.pinned_now_ms,
                      settle_ms=int(self.settings.settle_s * 1000))
            for i, segments in enumerate(shards)
        ]
        grant = item.series.paths.grant
        if job.in_process and job.workers == 1 and len(specs) == 1 and (
                grant is not None or item.buckets() <= INLINE_MAX_BUCKETS):
            # a cluster task (``grant``) is the worker itself, whatever its size
            inline = dataclasses.replace(specs[0], parent_pid=0, grant=grant)
            return run_inline(inline, report)
        lock = held_lock(LakePaths(job.lake).lock_file)
        if lock is None:
            raise RuntimeError("a Dwellir fetch runs under its run's lake lock (pipelines.runner)")
        results = run_shards(specs, report, lock)
        total = Counters()
        errors = []
        for result in results:
            total.merge(result.counters)
            if result.error:
                errors.append(result.error)
        if errors:
            numbers = [result.errno for result in results if result.errno]
            if numbers:  # a full disk, say: the system's error, so the CLI can advise
                raise OSError(numbers[0], "; ".join(sorted(set(errors))))
            raise TerminalError("; ".join(sorted(set(errors))))
        return total


def fetch(job: CandleJob, settings: SourceSettings) -> DwellirFetch:
    return DwellirFetch(job, settings)
