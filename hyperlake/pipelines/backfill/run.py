"""The driver of a backfill: the writer lock for the whole job, the plan, the tasks.

    with BackfillRun(config, settings, lake, request, executor) as run:  # the lock
        plan = run.plan()                        # from the files (+ the market list)
        outcome = run.execute(plan, progress)    # the tasks, wherever the executor runs them

The driver holds the lake's writer lock from before planning until every task has
ended; tasks write under its grant (``lake.lock.RunGrant``). On a cluster it also
publishes the sources' budgets (``budgets``). When the tasks are done it sweeps
leftovers of interrupted writes in what the run touched (no task is writing then),
records what no source can serve in the gap ledger (as ``update`` does) and reads
the gaps that are left back from the files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from hyperlake.lake.checkpoints import Series
from hyperlake.lake.compaction import CompactionStats, quarantine_broken_partitions
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import RangeSet, buckets_in
from hyperlake.lake.store import Location, absolute
from hyperlake.net.redact import Redactor
from hyperlake.pipelines.backfill.budgets import budget_facts
from hyperlake.pipelines.backfill.executors import Executor, Failed
from hyperlake.pipelines.backfill.plan import BackfillPlan, TaskPlanner, split_ledgers
from hyperlake.pipelines.backfill.tasks import (
    DaysCompacted,
    Extracted,
    GroupCompacted,
    Task,
    TaskContext,
    Verified,
)
from hyperlake.pipelines.runner import Counters
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.pipelines.update.config import UpdateConfig
from hyperlake.pipelines.update.plan import Group, UpdatePlan, left_in_ledger, provisional_left
from hyperlake.pipelines.update.run import UpdateRun

#: ``progress(lane, task, units done)``, as ``update``'s lanes report.
Progress = Callable[[str, object, int], None]


@dataclass(frozen=True)
class BackfillRequest:
    stages: tuple[str, ...]
    end_ms: int | None = None  # targets end here (None: at the last closed bucket)
    precedence: tuple[str, ...] = ()


@dataclass
class BackfillOutcome:
    """What a run did, for the summary and the exit status."""

    seconds: float = 0.0
    counters: Counters = field(default_factory=Counters)
    tasks_done: dict[str, int] = field(default_factory=dict)  # by lane
    errors: list[str] = field(default_factory=list)
    gaps: dict[Group, RangeSet] = field(default_factory=dict)
    provisional: int = 0
    compaction: CompactionStats = field(default_factory=CompactionStats)
    verified_series: int = 0
    violations: int = 0
    warnings: int = 0
    quarantined: list[str] = field(default_factory=list)  # files moved aside, one line each

    def gap_buckets(self) -> int:
        return sum(buckets_in(spans, group[2] or "1h") for group, spans in self.gaps.items())

    def take(self, task: Task, result: object) -> None:
        """Count one task's result in."""
        self.tasks_done[task.lane] = self.tasks_done.get(task.lane, 0) + 1
        if isinstance(result, Failed):
            self.errors.append(result.message)
        elif isinstance(result, Extracted):
            self.counters.merge(result.counters)
            if result.error:
                self.errors.append(result.error)
        elif isinstance(result, DaysCompacted | GroupCompacted):
            self.compaction.add(result.stats)
        elif isinstance(result, Verified):
            self.verified_series += 1
            self.violations += result.violations
            self.warnings += result.warnings


class BackfillRun:
    def __init__(self, config: UpdateConfig, settings: SourceSettings, lake: Location,
                 request: BackfillRequest, executor: Executor, *,
                 dwellir_rate: float | None = None, redactor: Redactor | None = None) -> None:
        self.request = request
        self.executor = executor
        self.settings = settings
        self.lake = absolute(lake)  # the tasks' processes have their own working folder
        self.paths = LakePaths(self.lake)
        self.broken = CompactionStats()  # partitions moved aside before planning
        self.rates = {"dwellir": dwellir_rate} if dwellir_rate is not None else {}
        self.update = UpdateRun(config, settings, self.lake, dwellir_rate=dwellir_rate,
                                redactor=redactor)

    def __enter__(self) -> BackfillRun:
        self.update.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.update.__exit__(exc_type, exc, tb)

    def plan(self) -> BackfillPlan:
        """What the run fetches, compacts and verifies, from the files."""
        update = self.update.prepare(self.request.end_ms)
        if "compact" in self.request.stages and self._quarantine_broken(update):
            update = self.update.replan(self.request.end_ms)  # their days are wanted again
        run_id = self.update.extract.grant().holder
        return TaskPlanner(self.paths, self.request.stages, run_id, self.rates).plan(update)

    def _quarantine_broken(self, update: UpdatePlan) -> bool:
        """Move aside the partitions of the job's groups that are not whole Parquet
        files, before planning, so their days are fetched again in this run (a
        compaction task sees only the days it has parts for). True if any moved."""
        groups = set(update.groups())
        for dataset in sorted({group[0] for group in groups}):
            quarantine_broken_partitions(self.paths, dataset, self.broken,
                                         lambda group: group in groups)
        return bool(self.broken.quarantined)

    def execute(self, plan: BackfillPlan, progress: Progress | None = None) -> BackfillOutcome:
        started = time.monotonic()
        report = progress or (lambda lane, task, done: None)
        outcome = BackfillOutcome()
        split_ledgers(self.paths, plan)
        payers = plan.payers()
        budgets = self.executor.publish(budget_facts(
            self.settings, self.rates, payers, self.executor.threads(), plan.run_id),
            plan.run_id) if payers else None
        ctx = TaskContext(self.lake, self.update.extract.grant(), self.settings,
                          self.request.precedence, budgets)

        def on_done(task: Task, result: object) -> None:
            outcome.take(task, result)
            report(task.lane, task, task.units)

        try:
            self.executor.run(plan.tasks, ctx, on_done,
                              lambda task, done: report(task.lane, task, done))
        finally:
            self.executor.unpublish()
        self._sweep(plan)
        if "extract" in plan.stages:
            self.update.ledger_beyond(plan.update)
        outcome.gaps = left_in_ledger(self.paths, plan.update)
        outcome.provisional = provisional_left(self.paths, plan.update)
        moved = [*self.update.extract.quarantined, *self.broken.quarantined,
                 *outcome.compaction.quarantined]
        outcome.quarantined = [q.line(self.lake) for q in moved]
        outcome.seconds = time.monotonic() - started
        return outcome

    def _sweep(self, plan: BackfillPlan) -> None:
        """Leftovers of writes interrupted by a worker's death, in what the run touched
        (every task has ended: nothing is in flight)."""
        for key in sorted({task.key for task in plan.extracts()}, key=SeriesKey.describe):
            series = Series(self.paths, key)
            for folder in (series.folder, series.ledger.folder, series.provisional.folder,
                           series.coverage_folder):
                self.paths.store.sweep(folder)
        for group in plan.update.groups():
            self.paths.store.sweep(self.paths.series_folder(*group))
