"""What an update run must fetch, from the files alone.

For every configured (source, market, interval) the target is [start, last closed
bucket); funding's is [start, last whole hour). ``ExtractRun.plan`` subtracts what the
series' files settle (checkpoint parts, coverage markers; gap-ledger and provisional
spans stay missing, so they are asked again), and this module then subtracts what the
other sources of the same (dataset, market, interval) settle: the lake keeps one row
per key, whichever source brought it.

A source that keeps only its most recent candles (Hyperliquid's 5000) or starts at a
floor cannot serve a hole older than that: such a part is taken from the configured
deeper sources, in order, each as far as its own floor allows; what none can serve
goes to the gap ledger of the source that was asked (``Horizon``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from hyperlake.lake.checkpoints import Series
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import RangeSet, Span, buckets_in
from hyperlake.pipelines.candles.registry import REGISTRY
from hyperlake.pipelines.candles.registry import source as registered
from hyperlake.pipelines.candles.snapshot import requests_for
from hyperlake.pipelines.funding import FUNDING_INTERVAL, packed_windows
from hyperlake.pipelines.runner import ExtractRun, Work
from hyperlake.pipelines.update.config import UpdateConfig
from hyperlake.schemas.exchange import (
    FUNDING_ROWS_PER_WEIGHT,
    INFO_BASE_WEIGHT,
    SNAPSHOT_MAX_CANDLES,
)
from hyperlake.schemas.intervals import HOUR_MS, bucket_start
from hyperlake.schemas.times import format_instant
from hyperlake.schemas.vocabulary import Dataset, Source

#: Funding windows per request (as ``hyperlake funding``'s default).
HOURS_PER_WINDOW = 336
#: Requests a one-candle-a-request job (Dwellir) spends warming its backends, at most.
ONE_PER_REQUEST_WARMUP = 6
#: The lane of funding (candle lanes are named for their source).
FUNDING_LANE = "funding"
Group = tuple[Dataset, str, str]


@dataclass(frozen=True)
class Beyond:
    """A hole older than a source can serve, and who takes which part of it."""

    key: SeriesKey  # the series that was asked for
    span: Span  # the part of its target the source cannot serve
    taken: tuple[tuple[Source, RangeSet], ...]  # by the deeper sources, in order
    left: RangeSet  # what no configured source serves: the gap ledger's

    def line(self) -> str:
        """One line for the user (and the JSON summary)."""
        interval = self.key.interval
        source = registered(self.key.source)
        why = (f"keeps only its most recent {source.horizon} {interval} candles"
               if source.horizon else f"starts at {format_instant(source.floor_ms or 0)}")
        head = (f"{self.key.describe()}: {buckets_in(self.missing(), interval)} missing "
                f"buckets before {format_instant(self.span.end)} are beyond its reach ({why})")
        parts = [f"{buckets_in(spans, interval)} from {name}" for name, spans in self.taken
                 if spans]
        if self.left:
            parts.append(f"{buckets_in(self.left, interval)} to the gap ledger (no deeper "
                         "source serves them: configure hydromancer or dwellir)")
        return head + ("; " + ", ".join(parts) if parts else "")

    def missing(self) -> RangeSet:
        out = self.left
        for _, spans in self.taken:
            out = out.union(spans)
        return out

    def as_dict(self) -> dict[str, object]:
        interval = self.key.interval
        return {"series": self.key.describe(), "start": format_instant(self.span.start),
                "end": format_instant(self.span.end),
                "buckets": buckets_in(self.missing(), interval),
                "taken": {name: buckets_in(spans, interval) for name, spans in self.taken},
                "ledgered": buckets_in(self.left, interval)}


@dataclass
class Item:
    """One series' share of the run."""

    work: Work
    lane: str  # who fetches it: a candle source, or "funding"
    retry: int = 0  # missing buckets that sit in the gap ledger
    recheck: int = 0  # missing buckets that are provisional (asked again)

    @property
    def key(self) -> SeriesKey:
        return self.work.key

    def buckets(self) -> int:
        return self.work.buckets()

    def asks(self) -> list[Span]:
        """The requests a paged fetch (candle snapshots, funding) sends for the missing
        buckets, retries aside: the same packing the fetches use."""
        if self.lane == FUNDING_LANE:
            return [a for a, _ in packed_windows(self.work.missing, HOURS_PER_WINDOW)]
        source = registered(self.key.source)
        per = source.candles_per_weight
        return [a for a, _ in requests_for(
            self.work.missing, self.key.interval, SNAPSHOT_MAX_CANDLES,
            lambda n: per is None or n // per < (source.request_weight or 0))]

    def requests(self) -> int:
        """Requests the missing buckets need at least (no retries)."""
        if self.lane != FUNDING_LANE and registered(self.key.source).request_weight is None:
            return self.buckets() + (ONE_PER_REQUEST_WARMUP if self.buckets() else 0)
        return len(self.asks())

    def weight(self) -> float:
        """What the requests weigh in their source's budget (a source paced by rate, one
        candle a request: none)."""
        if self.lane == FUNDING_LANE:
            return sum(INFO_BASE_WEIGHT + buckets_in([a], FUNDING_INTERVAL)
                       // FUNDING_ROWS_PER_WEIGHT for a in self.asks())
        source = registered(self.key.source)
        if source.request_weight is None:
            return 0.0
        return sum(source.answer_weight(buckets_in([a], self.key.interval))
                   for a in self.asks())


@dataclass
class UpdatePlan:
    now_ms: int
    markets: list[str]
    items: list[Item] = field(default_factory=list)
    beyond: list[Beyond] = field(default_factory=list)
    wants: dict[Group, Span] = field(default_factory=dict)  # each group's target

    def todo(self, lane: str | None = None) -> list[Item]:
        return [i for i in self.items if i.work.missing and (lane is None or i.lane == lane)]

    def lanes(self) -> list[str]:
        return list(dict.fromkeys(i.lane for i in self.todo()))

    def groups(self) -> set[Group]:
        return set(self.wants)


def _group(key: SeriesKey) -> Group:
    return (key.dataset, key.market, key.interval)


class Planner:
    """Targets → work, under the run's lock (``ExtractRun``)."""

    def __init__(self, run: ExtractRun, config: UpdateConfig, now_ms: int,
                 end_ms: int | None = None) -> None:
        self.run = run
        self.paths: LakePaths = run.paths
        self.config = config
        self.now_ms = now_ms
        #: Targets end here at the latest (``backfill --end``); None: at "now".
        self.until_ms = now_ms if end_ms is None else min(now_ms, end_ms)
        self._sources: dict[tuple[Dataset, str], list[SeriesKey]] = {}

    def plan(self, markets: Sequence[str], funded: Iterable[str]) -> UpdatePlan:
        plan = UpdatePlan(self.now_ms, list(markets))
        for candle in self.config.candles:
            for interval in candle.intervals:
                start = candle.start.resolve(self.now_ms, interval)
                end = bucket_start(self.until_ms, interval)
                if start >= end:
                    continue
                for market in markets:
                    key = SeriesKey("candles", candle.source, market, interval)
                    self._candle(plan, key, Span(start, end))
        if self.config.funding:
            start = self.config.funding_start.resolve(self.now_ms, FUNDING_INTERVAL)
            end = self.until_ms // HOUR_MS * HOUR_MS
            if start < end:
                for market in funded:
                    key = SeriesKey("funding", "hyperliquid", market, FUNDING_INTERVAL)
                    plan.wants[_group(key)] = Span(start, end)
                    self._add(plan, key, Span(start, end), FUNDING_LANE)
        return plan

    def _candle(self, plan: UpdatePlan, key: SeriesKey, want: Span) -> None:
        group = _group(key)
        previous = plan.wants.get(group)
        plan.wants[group] = want if previous is None else Span(
            min(previous.start, want.start), max(previous.end, want.end))
        earliest = registered(key.source).earliest(key.interval, self.now_ms)
        reach = max(want.start, earliest or want.start)
        if reach < want.end:
            self._add(plan, key, Span(reach, want.end), key.source)
        if want.start < min(reach, want.end):
            self._beyond(plan, key, Span(want.start, min(reach, want.end)))

    def _beyond(self, plan: UpdatePlan, key: SeriesKey, old: Span) -> None:
        missing = RangeSet([old]).subtract(self.settled(key, others_only=False))
        if not missing:
            return
        taken = []
        for name in self.config.deep_sources:
            deep = REGISTRY[name]
            if name == key.source or key.interval not in deep.intervals:
                continue
            floor = deep.earliest(key.interval, self.now_ms) or 0
            share = missing.intersect(RangeSet([Span(max(floor, old.start),
                                                     max(floor, old.end))]))
            if not share:
                continue
            taken.append((name, share))
            missing = missing.subtract(share)
            hull = Span(share.spans[0].start, share.spans[-1].end)
            self._add(plan, SeriesKey("candles", name, key.market, key.interval), hull, name)
        plan.beyond.append(Beyond(key, old, tuple(taken), missing))

    def _add(self, plan: UpdatePlan, key: SeriesKey, want: Span, lane: str) -> None:
        (work,) = self.run.plan([(key, want)])
        missing = work.missing.subtract(self.settled(key, others_only=True))
        work = dataclasses.replace(work, missing=missing)
        item = Item(work, lane)
        item.retry = buckets_in(missing.intersect(work.series.ledger.spans()), key.interval)
        item.recheck = buckets_in(missing.intersect(work.series.provisional.spans()),
                                  key.interval)
        plan.items.append(item)

    def settled(self, key: SeriesKey, *, others_only: bool) -> RangeSet:
        """What the series of ``key``'s (dataset, market, interval) settle: every
        source's, or only the other sources'."""
        out = RangeSet()
        for other in self._keys(key):
            if not (others_only and other.source == key.source):
                out = out.union(Series(self.paths, other).done())
        return out

    def _keys(self, key: SeriesKey) -> list[SeriesKey]:
        """Every source's series of ``key``'s (dataset, market, interval), from folder
        names (listed once per dataset and run)."""
        if (key.dataset, "") not in self._sources:
            self._sources[(key.dataset, "")] = self.paths.state_keys(key.dataset)
        found = [k for k in self._sources[(key.dataset, "")]
                 if (k.market, k.interval) == (key.market, key.interval)]
        return found if key in found else [*found, key]


def left_in_ledger(paths: LakePaths, plan: UpdatePlan) -> dict[Group, RangeSet]:
    """Per group, what is still in a gap ledger (of any source) and settled by none,
    inside the group's target: the gaps a run leaves (read from files)."""
    out: dict[Group, RangeSet] = {}
    by_group: dict[Group, list[SeriesKey]] = {}
    for dataset in sorted({g[0] for g in plan.wants}):
        for key in paths.state_keys(dataset):
            by_group.setdefault(_group(key), []).append(key)
    for group, want in plan.wants.items():
        series = [Series(paths, k) for k in by_group.get(group, [])]
        ledgered = RangeSet(s for ser in series for s in ser.ledger.spans())
        settled = RangeSet(s for ser in series for s in ser.done())
        left = ledgered.intersect(RangeSet([want])).subtract(settled)
        if left:
            out[group] = left
    return out


def provisional_left(paths: LakePaths, plan: UpdatePlan) -> int:
    """Buckets still provisional in the targets after the run (normal near the head)."""
    total = 0
    for item in plan.items:
        spans = item.work.series.provisional.spans().intersect(RangeSet([item.work.want]))
        total += buckets_in(spans, item.key.interval)
    return total
