"""``hyperlake update``: every configured series brought up to date in one process.

    with UpdateRun(config, settings, lake) as run:   # the writer lock, or LakeBusy
        plan = run.prepare()                         # universe (+ contexts for top N)
        outcome = run.execute(plan, progress)        # fetch, snapshot, compact, verify

One lock for the whole run (``ExtractRun``); every series is planned from the files
(``update.plan``) and fetched by the existing extractors, series after series, in a
lane per source (the sources' budgets are separate, so the lanes run side by side;
one source's series run one after another: a Dwellir job takes its plan's whole rate,
and Hyperliquid's weight budget is shared machine-wide anyway). No per-series process:
a Dwellir job runs in this process unless it is large enough to need workers.

While a lane may still write, the lock is not released: a stop while lanes run ends
the process (``commands.update``), and the kernel releases the lock with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

import orjson

from hyperlake.errors import HyperlakeError
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.ledger import Failure
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import RangeSet, buckets_in
from hyperlake.lake.store import Location
from hyperlake.net.info import InfoClient, InfoStats
from hyperlake.net.redact import Redactor
from hyperlake.pipelines.candles.job import CandleJob, source_fetch
from hyperlake.pipelines.candles.registry import source as registered
from hyperlake.pipelines.funding import FundingFetch, FundingJob
from hyperlake.pipelines.runner import Counters, ExtractRun, OnProgress
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.pipelines.universe import Market, cache_folder, cached_universe, load_universe
from hyperlake.pipelines.update import contexts, markets
from hyperlake.pipelines.update.config import UpdateConfig
from hyperlake.pipelines.update.plan import (
    FUNDING_LANE,
    HOURS_PER_WINDOW,
    Group,
    Item,
    Planner,
    UpdatePlan,
    left_in_ledger,
    provisional_left,
)
from hyperlake.schemas.times import format_instant

#: ``progress(lane, series, done)``: units of a series (or of the funding lane) done.
Progress = Callable[[str, SeriesKey | None, int], None]
RECORD_VERSION = 1

if TYPE_CHECKING:  # imported where a request is made (see net.info)
    import httpx
#: Verification findings a run reports as gaps (exit 4), not as violations (exit 1).
LEDGER_FINDINGS = frozenset({"failed"})


def beyond_reason(source: str) -> str:
    return (f"beyond {source}'s reach (its horizon or floor) and no configured deeper "
            "source serves it")


@dataclass
class LaneResult:
    counters: Counters = field(default_factory=Counters)
    error: str | None = None


@dataclass
class UpdateOutcome:
    """What a run did, for the summary, the exit status and the last-run record."""

    started_ms: int
    seconds: float = 0.0
    counters: Counters = field(default_factory=Counters)
    errors: list[str] = field(default_factory=list)
    gaps: dict[Group, RangeSet] = field(default_factory=dict)
    provisional: int = 0
    snapshot_markets: int = 0
    snapshot_time: int | None = None
    compacted_groups: int = 0
    partitions_written: int = 0
    verified_series: int = 0
    violations: int = 0
    warnings: int = 0
    quarantined: list[str] = field(default_factory=list)

    def gap_buckets(self) -> int:
        return sum(buckets_in(spans, group[2] or "1h") for group, spans in self.gaps.items())


class UpdateRun:
    def __init__(self, config: UpdateConfig, settings: SourceSettings, lake: Location, *,
                 dwellir_rate: float | None = None, redactor: Redactor | None = None) -> None:
        self.config = config
        self.settings = settings
        self.lake = lake
        self.paths = LakePaths(lake)
        self.dwellir_rate = dwellir_rate
        self.redact = redactor or Redactor(settings.secrets())
        self.extract = ExtractRun(lake)
        self.universe_requests = 0
        self.snapshot: contexts.Snapshot | None = None
        self._lanes: list[threading.Thread] = []

    def __enter__(self) -> UpdateRun:
        self.extract.__enter__()
        return self

    def lanes_alive(self) -> bool:
        """Whether a lane may still be fetching (and so committing)."""
        return any(t.is_alive() for t in self._lanes)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.lanes_alive():
            return  # a lane may still commit: the lock goes with the process
        self.extract.__exit__(exc_type, exc, tb)

    # -- planning ----------------------------------------------------------------------

    def _client(self, http: httpx.Client, stats: InfoStats) -> InfoClient:
        return InfoClient(self.settings.hyperliquid_info(), http, self.settings.backoff(),
                          stats=stats)

    def prepare(self, end_ms: int | None = None) -> UpdatePlan:
        """The markets (the universe, and the contexts when ranking by volume) and what
        each series misses, from the files, up to ``end_ms`` (None: now). No other
        request."""
        universe = cached_universe(self.settings.hyperliquid_url, cache_folder())
        volume = None
        if universe is None or self.config.markets.select == "top":
            import httpx  # only when something must be asked (see net.info)

            with httpx.Client(timeout=30, verify=self.settings.verify()) as http:
                if universe is None:
                    universe = load_universe(self.settings.hyperliquid_url, cache_folder(),
                                             http, budget=self.settings.hyperliquid_budget())
                if self.config.markets.select == "top":
                    pool = markets.candidates(universe, self.config.markets)
                    self.snapshot = self._fetch_snapshot(http, InfoStats(), pool)
                    volume = {n: self.snapshot.day_volume(n) for n in self.snapshot.rows}
        chosen = markets.select(universe, self.config.markets, volume)
        self.universe = universe
        self.chosen = chosen
        return self.replan(end_ms)

    def replan(self, end_ms: int | None = None) -> UpdatePlan:
        """What each chosen market's series miss, from the files again (after
        ``prepare``; no request)."""
        funded = [m.name for m in self.chosen if m.has_funding]
        planner = Planner(self.extract, self.config, self.settings.now_ms(), end_ms)
        return planner.plan([m.name for m in self.chosen], funded)

    def _fetch_snapshot(self, http: httpx.Client, stats: InfoStats,
                        chosen: list[Market]) -> contexts.Snapshot:
        dexes = ["", *markets.hip3_dexes(chosen)]
        spot = any(m.kind == "spot" for m in chosen)
        return contexts.fetch_snapshot(self._client(http, stats), dexes, spot,
                                       self.settings.now_ms)

    # -- running -----------------------------------------------------------------------

    def execute(self, plan: UpdatePlan, progress: Progress | None = None) -> UpdateOutcome:
        started = time.monotonic()
        outcome = UpdateOutcome(plan.now_ms)
        groups = set(plan.groups())
        if self.config.asset_ctxs:
            groups |= self._take_snapshot(outcome)
        results = self._run_lanes(plan, progress or (lambda lane, key, done: None))
        for result in results.values():
            outcome.counters.merge(result.counters)
            if result.error:
                outcome.errors.append(result.error)
        self.ledger_beyond(plan)
        outcome.quarantined = [q.line(self.lake) for q in self.extract.quarantined]
        if self.config.compact:
            self._compact(groups, outcome)
        outcome.gaps = left_in_ledger(self.paths, plan)
        outcome.provisional = provisional_left(self.paths, plan)
        outcome.seconds = time.monotonic() - started
        return outcome

    def _take_snapshot(self, outcome: UpdateOutcome) -> set[Group]:
        """This run's asset contexts (fetched now unless ranking fetched them)."""
        scope_all = self.config.asset_ctxs_scope == "all"
        pool = markets.candidates(self.universe, self.config.markets) if scope_all \
            else self.chosen
        if self.snapshot is None:
            import httpx

            stats = InfoStats()
            try:
                with httpx.Client(timeout=30, verify=self.settings.verify()) as http:
                    self.snapshot = self._fetch_snapshot(http, stats, pool)
            except HyperlakeError as exc:
                outcome.errors.append(f"asset contexts: {self.redact(str(exc))}")
                return set()
        snapshot = self.snapshot
        outcome.counters.requests += snapshot.requests
        outcome.counters.weight += snapshot.weight
        names = list(snapshot.rows) if scope_all else [m.name for m in self.chosen]
        outcome.snapshot_markets = contexts.write_snapshot(self.paths, snapshot, names)
        outcome.snapshot_time = next(iter(snapshot.rows.values())).time \
            if snapshot.rows else None
        return {("asset_ctxs", name, "") for name in names if name in snapshot.rows}

    def _run_lanes(self, plan: UpdatePlan, progress: Progress) -> dict[str, LaneResult]:
        results = {lane: LaneResult() for lane in plan.lanes()}
        failures: list[BaseException] = []

        def lane_body(lane: str) -> None:
            try:
                self._lane(lane, plan.todo(lane), results[lane], progress)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                failures.append(exc)

        self._lanes = [threading.Thread(target=lane_body, args=(lane,), daemon=True,
                                        name=f"update-{lane}") for lane in results]
        for thread in self._lanes:
            thread.start()
        for thread in self._lanes:
            while thread.is_alive():
                thread.join(0.2)
        if failures:
            raise failures[0]
        return results

    def _lane(self, lane: str, items: list[Item], result: LaneResult,
              progress: Progress) -> None:
        try:
            if lane == FUNDING_LANE:
                self._funding(items, result, progress)
                return
            for item in items:
                self._candles(lane, item, result, progress)
        except HyperlakeError as exc:
            result.error = f"{lane}: {self.redact(str(exc))}"

    def _candles(self, lane: str, item: Item, result: LaneResult, progress: Progress) -> None:
        key, want = item.key, item.work.want
        source = registered(key.source)
        job = CandleJob(source=source.name, market=key.market, interval=key.interval,
                        start_ms=want.start, end_ms=want.end, lake=self.lake, workers=1,
                        rate=self.dwellir_rate if source.plans is not None else None,
                        in_process=True)
        done: OnProgress = lambda total, counters, units: progress(lane, key, units)  # noqa: E731
        outcome = self.extract.execute([item.work], source_fetch(job, self.settings), done)
        result.counters.merge(outcome.counters)

    def _funding(self, items: list[Item], result: LaneResult, progress: Progress) -> None:
        first = items[0].work.want
        job = FundingJob(markets=tuple(i.key.market for i in items), start_ms=first.start,
                         end_ms=first.end, lake=self.lake, hours_per_window=HOURS_PER_WINDOW)
        done: OnProgress = lambda total, counters, units: progress(FUNDING_LANE, None, units)  # noqa: E731
        outcome = self.extract.execute([i.work for i in items], FundingFetch(job, self.settings),
                                       done)
        result.counters.merge(outcome.counters)

    def ledger_beyond(self, plan: UpdatePlan) -> None:
        """What no source can serve goes to the asking series' gap ledger; what a deeper
        source took is no longer that series' gap."""
        for beyond in plan.beyond:
            series = Series(self.paths, beyond.key)
            for _, spans in beyond.taken:
                for span in spans:
                    series.ledger.clear(span, set())
            for span in beyond.left:
                series.ledger.record(Failure(span, beyond_reason(beyond.key.source)))

    def _compact(self, groups: set[Group], outcome: UpdateOutcome) -> None:
        from hyperlake.pipelines.compact import CompactJob, run_compact
        from hyperlake.verify import SeriesId, verify_changed

        stats, _ = run_compact(CompactJob(lake=self.lake, groups=frozenset(groups)))
        outcome.compacted_groups = len(stats.groups)
        outcome.partitions_written = stats.partitions_written
        outcome.quarantined += [q.line(self.lake) for q in stats.quarantined]
        if not self.config.verify:
            return
        changed = {SeriesId(*group): days for group, days in stats.days.items()}
        report = verify_changed(self.lake, changed)
        outcome.verified_series = len(report.series)
        outcome.violations = sum(f.weight for series in report.series
                                 for name, f in series.findings.items()
                                 if f.severity == "violation" and name not in LEDGER_FINDINGS)
        outcome.warnings = report.warnings

    # -- the record ---------------------------------------------------------------------

    def record(self, outcome: UpdateOutcome, result: str, exit_code: int) -> None:
        """The last run, for ``hyperlake status`` (one small file, replaced atomically)."""
        c = outcome.counters
        self.paths.store.put(self.paths.update_record, orjson.dumps({
            "version": RECORD_VERSION, "started": format_instant(outcome.started_ms),
            "finished": format_instant(self.settings.now_ms()),
            "finished_wall": time.time(), "seconds": round(outcome.seconds, 3),
            "result": result, "exit": exit_code, "requests": c.requests,
            "weight": c.weight, "fetched": c.fetched, "gaps": outcome.gap_buckets(),
            "provisional": outcome.provisional,
            "errors": [self.redact(e) for e in outcome.errors],
        }, option=orjson.OPT_INDENT_2))
