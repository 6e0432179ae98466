"""What ``hyperlake update`` prints: the plan (``--dry-run``), the outcome, the JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperlake.commands.jsonline import summary_line
from hyperlake.schemas.exchange import INFO_BASE_WEIGHT

if TYPE_CHECKING:
    from hyperlake.pipelines.settings import SourceSettings
    from hyperlake.pipelines.update.config import UpdateConfig
    from hyperlake.pipelines.update.plan import UpdatePlan
    from hyperlake.pipelines.update.run import UpdateOutcome

#: A round trip, for the estimate of a lane that no budget holds back.
LATENCY_S = 0.05


def _seconds(plan: UpdatePlan, settings: SourceSettings, config: UpdateConfig) -> float:
    """The time the plan needs at least: each budget's weight beyond its first minute's
    burst at its pace, or a rate-paced source's requests at its rate, side by side;
    and a round trip per paged request."""
    from hyperlake.pipelines.candles.registry import REGISTRY

    budgets = {"hyperliquid": settings.hyperliquid_weight,  # funding pays from it too
               "hydromancer": settings.hydromancer_weight}
    weight = {name: 0.0 for name in budgets}
    seconds, paged = [0.0], 0
    for item in plan.todo():
        source = item.key.source
        if source in weight:
            weight[source] += item.weight()
        rate = REGISTRY[source].rate(config.source(source).rate, config.source(source).plan) \
            if source in REGISTRY else None
        if rate is not None:
            seconds.append(item.requests() / rate)
        else:
            paged += item.requests()
    seconds += [max(0.0, weight[n] - budgets[n]) / (budgets[n] / 60) for n in budgets]
    return max([*seconds, paged * LATENCY_S])


def plan_fields(plan: UpdatePlan, settings: SourceSettings,
                config: UpdateConfig) -> dict[str, object]:
    todo = plan.todo()
    return {
        "dry_run": True, "markets": len(plan.markets), "series": len(plan.items),
        "series_to_update": len(todo), "buckets": sum(i.buckets() for i in todo),
        "retry": sum(i.retry for i in todo), "recheck": sum(i.recheck for i in todo),
        "requests": sum(i.requests() for i in todo)
        + (1 if config.asset_ctxs else 0),
        "weight": sum(i.weight() for i in todo) + (INFO_BASE_WEIGHT if config.asset_ctxs else 0),
        "seconds_estimated": round(_seconds(plan, settings, config), 1),
        "beyond_horizon": [b.as_dict() for b in plan.beyond],
        "plan": [{"series": i.key.describe(), "buckets": i.buckets(), "retry": i.retry,
                  "recheck": i.recheck, "requests": i.requests(), "weight": i.weight()}
                 for i in todo],
    }


def plan_summary(plan: UpdatePlan, settings: SourceSettings, config: UpdateConfig) -> str:
    return summary_line(**plan_fields(plan, settings, config))


def plan_lines(plan: UpdatePlan, settings: SourceSettings, config: UpdateConfig) -> list[str]:
    fields = plan_fields(plan, settings, config)
    lines = [f"{'series':<44} {'buckets':>9} {'retry':>6} {'recheck':>7} {'requests':>9} "
             f"{'weight':>9}"]
    for item in plan.todo():
        lines.append(f"{item.key.describe():<44} {item.buckets():>9,} {item.retry:>6,} "
                     f"{item.recheck:>7,} {item.requests():>9,} {item.weight():>9,.0f}")
    lines += [b.line() for b in plan.beyond]
    if config.asset_ctxs:
        lines.append("asset contexts: one snapshot (1 request per dex, weight "
                     f"{INFO_BASE_WEIGHT} each)")
    lines.append(f"plan: {fields['series_to_update']} of {fields['series']} series to update "
                 f"({fields['markets']} markets), {fields['buckets']:,} buckets "
                 f"({fields['retry']:,} from the gap ledger, {fields['recheck']:,} provisional "
                 f"to re-check), {fields['requests']:,} requests, weight "
                 f"{fields['weight']:,.0f}, about {fields['seconds_estimated']}s")
    return lines


def outcome_fields(plan: UpdatePlan, outcome: UpdateOutcome, result: str,
                   code: int) -> dict[str, object]:
    c = outcome.counters
    from hyperlake.schemas.times import format_instant

    return {
        "result": result, "exit": code, "markets": len(plan.markets),
        "series": len(plan.items), "series_updated": len(plan.todo()),
        "planned": sum(i.buckets() for i in plan.todo()), "fetched": c.fetched,
        "empty": c.empty, "retried": c.retried, "failed": c.failed,
        "provisional": outcome.provisional, "gaps": outcome.gap_buckets(),
        "requests": c.requests, "weight": c.weight,
        "beyond_horizon": [b.as_dict() for b in plan.beyond],
        "asset_ctxs": {"markets": outcome.snapshot_markets,
                       "time": format_instant(outcome.snapshot_time)
                       if outcome.snapshot_time is not None else None},
        "compacted_groups": outcome.compacted_groups,
        "partitions_written": outcome.partitions_written,
        "verified_series": outcome.verified_series, "violations": outcome.violations,
        "warnings": outcome.warnings, "errors": outcome.errors,
        "quarantined": outcome.quarantined, "seconds": round(outcome.seconds, 3),
    }


def outcome_lines(plan: UpdatePlan, outcome: UpdateOutcome,
                  quiet: bool = False) -> tuple[list[str], list[str]]:
    """(notes for standard error, the summary for standard output); nothing at all
    when there was nothing to do. ``quiet``: only what is wrong (a part beyond every
    configured source's reach is; one a deeper source took is not)."""
    notes = [b.line() for b in plan.beyond if b.left or not quiet]
    if outcome.gaps:
        notes.append(f"{outcome.gap_buckets():,} buckets are in the gap ledger; the next run "
                     "retries them (hyperlake status shows where)")
    todo = plan.todo()
    if not todo and not outcome.gaps:
        return notes, []
    c = outcome.counters
    line = (f"update: {len(todo)} of {len(plan.items)} series updated "
            f"({len(plan.markets)} markets): {sum(i.buckets() for i in todo):,} buckets, "
            f"{c.fetched:,} rows, {c.empty:,} empty, {c.retried:,} retried, "
            f"{c.failed:,} failed; {c.requests:,} requests, weight {c.weight:,.0f}; "
            f"{outcome.seconds:.1f}s")
    lines = [line]
    if outcome.provisional:
        lines.append(f"  {outcome.provisional:,} buckets near the head are provisional; the "
                     "next run checks them again")
    if outcome.compacted_groups:
        lines.append(f"  compacted {outcome.compacted_groups} series into "
                     f"{outcome.partitions_written} partitions; verified "
                     f"{outcome.verified_series} series: {outcome.violations} violations, "
                     f"{outcome.warnings} warnings")
    return notes, lines

