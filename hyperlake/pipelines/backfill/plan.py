"""A backfill's graph of tasks, planned from the files (as every extract plans).

What to fetch is ``update``'s plan (``pipelines.update.plan``: the configured markets x
intervals x sources from their start, minus what any source's files settle, holes
beyond a source's reach handed to the deeper sources), with ``--start``/``--end``
applied. Each series' share is then cut into chunks, calendar months (UTC days for
1s bars), floored to the interval's buckets, one extract task each. Per group
(dataset, market, interval): one compaction task per month of days that has parts
(existing ones, or the chunks' of this run), each after the extracts whose days it
merges, a finish after all of them, and a verify after the finish.

A task exists only for what is missing, so a second submission of a finished plan
has no extract task at all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise

from hyperlake.lake.checkpoints import Series
from hyperlake.lake.compaction import days_of
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.pipelines.backfill.tasks import (
    EXTRACTS,
    CompactDays,
    Extract,
    FinishGroup,
    Task,
    VerifyGroup,
)
from hyperlake.pipelines.update.plan import Group, UpdatePlan
from hyperlake.schemas.intervals import DAY_MS, bucket_start, next_bucket
from hyperlake.schemas.times import format_instant
from hyperlake.schemas.vocabulary import DATASETS, Dataset

#: Each interval's chunk: what one extract task fetches at most (else a month).
CHUNK_PERIOD = {"1s": "1d"}


def chunk_cuts(want: Span, interval: str) -> list[int]:
    """Where ``want`` is cut into chunks: the starts of the calendar months (days, for
    1s) inside it, floored to ``interval``'s buckets so that no bucket is cut."""
    period = CHUNK_PERIOD.get(interval, "1M")
    cuts: list[int] = []
    t = next_bucket(bucket_start(want.start, period), period)
    while t < want.end:
        cut = bucket_start(t, interval)
        if want.start < cut < want.end and (not cuts or cut > cuts[-1]):
            cuts.append(cut)
        t = next_bucket(t, period)
    return cuts


def chunks(want: Span, interval: str) -> list[Span]:
    edges = [want.start, *chunk_cuts(want, interval), want.end]
    return [Span(a, b) for a, b in pairwise(edges)]


def month_ranges(days: Iterable[int]) -> list[tuple[int, int]]:
    """[first, end) day numbers of the calendar months the days fall in, in order."""
    out = set()
    for day in days:
        first = bucket_start(day * DAY_MS, "1M")
        out.add((first // DAY_MS, next_bucket(first, "1M") // DAY_MS))
    return sorted(out)


@dataclass
class BackfillPlan:
    update: UpdatePlan
    stages: tuple[str, ...]
    run_id: str
    tasks: list[Task] = field(default_factory=list)  # each after the tasks it needs
    cuts: dict[SeriesKey, list[int]] = field(default_factory=dict)  # chunk edges per series

    def count(self, kind: type) -> int:
        return sum(isinstance(t, kind) for t in self.tasks)

    def extracts(self) -> list[Extract]:
        return [t for t in self.tasks if isinstance(t, Extract)]

    def payers(self) -> dict[str, int]:
        """Extract tasks by the budget that pays for them."""
        out: dict[str, int] = defaultdict(int)
        for task in self.extracts():
            out[task.payer or task.key.source] += 1
        return dict(out)

    def units(self) -> dict[str, int]:
        """Units of progress by lane."""
        out: dict[str, int] = defaultdict(int)
        for task in self.tasks:
            out[task.lane] += task.units
        return dict(out)


class TaskPlanner:
    """``UpdatePlan`` → the run's tasks (in the driver, under the writer lock)."""

    def __init__(self, paths: LakePaths, stages: tuple[str, ...], run_id: str,
                 rates: Mapping[str, float]) -> None:
        self.paths = paths
        self.stages = stages
        self.run_id = run_id
        self.rates = rates
        self._checkpoint_keys: dict[Dataset, list[SeriesKey]] = {}

    def plan(self, update: UpdatePlan) -> BackfillPlan:
        plan = BackfillPlan(update, self.stages, self.run_id)
        extracts = self._extracts(update, plan) if "extract" in self.stages else []
        plan.tasks += extracts
        by_group: dict[Group, list[Extract]] = defaultdict(list)
        for task in extracts:
            by_group[_group(task.key)].append(task)
        for group in sorted(update.groups()):
            finish = self._compaction(plan, group, by_group[group]) \
                if "compact" in self.stages else None
            if "verify" in self.stages:
                plan.tasks.append(VerifyGroup(
                    name=self._name("verify", *group), group=group,
                    whole="compact" not in self.stages,
                    deps=(finish.name,) if finish is not None else ()))
        return plan

    def _name(self, kind: str, *parts: str) -> str:
        return "-".join([kind, *[p for p in parts if p], self.run_id[:8]])

    def _extracts(self, update: UpdatePlan, plan: BackfillPlan) -> list[Extract]:
        out: list[Extract] = []
        for item in update.todo():
            key = item.key
            make = EXTRACTS[key.dataset]
            plan.cuts[key] = sorted({*plan.cuts.get(key, []),
                                     *chunk_cuts(item.work.want, key.interval)})
            for chunk in chunks(item.work.want, key.interval):
                missing = item.work.missing.intersect(RangeSet([chunk]))
                if missing:
                    out.append(make(
                        name=self._name("extract", key.dataset, key.source, key.market,
                                        key.interval, format_instant(chunk.start)),
                        key=key, want=chunk, missing=missing,
                        rate=self.rates.get(key.source)))
        return out

    def _compaction(self, plan: BackfillPlan, group: Group,
                    extracts: list[Extract]) -> FinishGroup | None:
        """The group's month merges and its finish, or None when it has no part."""
        tasks = self.compaction(group, extracts)
        plan.tasks += tasks
        return next((t for t in tasks if isinstance(t, FinishGroup)), None)

    def compaction(self, group: Group, extracts: list[Extract]) -> list[Task]:
        """One merge per month of days with parts (existing ones, or the extracts'),
        each after the extracts whose days it merges, then the group's finish."""
        existing = [k for k in self._keys(group[0]) if _group(k) == group]
        keys = tuple(sorted({*existing, *(t.key for t in extracts)},
                            key=lambda k: (k.source, k.market, k.interval)))
        spans = [span for key in existing for span, _ in Series(self.paths, key).parts()]
        spans += [task.want for task in extracts]
        days = {d for span in spans for d in days_of(span)}
        if not days:
            return []
        merges: list[Task] = []
        for lo, hi in month_ranges(days):
            deps = tuple(t.name for t in extracts
                         if any(lo <= d < hi for d in days_of(t.want)))
            merges.append(CompactDays(
                name=self._name("compact", *group, format_instant(lo * DAY_MS)[:7]),
                group=group, keys=keys, days=(lo, hi), deps=deps))
        finish = FinishGroup(name=self._name("finish", *group), group=group, keys=keys,
                             deps=tuple(m.name for m in merges))
        return [*merges, finish]

    def _keys(self, dataset: Dataset) -> list[SeriesKey]:
        if dataset not in self._checkpoint_keys:
            self._checkpoint_keys[dataset] = self.paths.checkpoint_keys(dataset)
        return self._checkpoint_keys[dataset]


def lake_compaction(paths: LakePaths, run_id: str) -> list[Task]:
    """``hyperlake compact``'s job as tasks: every group with checkpoint parts."""
    planner = TaskPlanner(paths, ("compact",), run_id, {})
    groups = sorted({_group(key) for dataset in DATASETS
                     for key in paths.checkpoint_keys(dataset)})
    return [task for group in groups for task in planner.compaction(group, [])]


def _group(key: SeriesKey) -> Group:
    return (key.dataset, key.market, key.interval)


def split_ledgers(paths: LakePaths, plan: BackfillPlan) -> None:
    """Cut the ledger entries of every series the run fetches at its chunks' edges, so
    tasks of one series running at once each clear only entries of their own."""
    for key, cuts in plan.cuts.items():
        if cuts:
            series = Series(paths, key)
            series.ledger.split_at(cuts)
            series.provisional.split_at(cuts)
