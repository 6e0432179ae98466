"""``hyperlake backfill``: a large job as small tasks, on a Dask cluster or in-process."""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, Any

from hyperlake.pipelines.backfill import STAGES

if TYPE_CHECKING:
    from hyperlake.pipelines.backfill.executors import Executor
    from hyperlake.pipelines.backfill.plan import BackfillPlan
    from hyperlake.pipelines.backfill.run import BackfillOutcome, BackfillRun
    from hyperlake.pipelines.settings import SourceSettings
    from hyperlake.pipelines.update.config import UpdateConfig

EXIT_OK, EXIT_ERROR, EXIT_GAPS = 0, 1, 4
EPILOG = """\
The job is what `hyperlake update` keeps current (the same hyperlake.toml: markets x
intervals x sources from their start), with --start/--end over the file, cut into
tasks: one extract per series and calendar month (UTC day for 1s bars), one
compaction per partition group and month, a finish and a verify per group. Each task
plans from the files, so a second submission fetches nothing already covered, and a
task retried after a worker died ends where one run ends.

where the tasks run:
  --scheduler tcp://HOST:8786 (or Dask's own setting: $DASK_SCHEDULER_ADDRESS, or
  scheduler-address in a Dask config file): on that dask.distributed cluster, whose
  workers must all reach the lake (pip install 'hyperlake[dask]'). Without one: in
  this process, one task after another. Either way this process holds the lake's
  writer lock until the job ends; the tasks write under its grant and stop if another
  run takes the lake. Source limits hold for the sum of all tasks: each budget (Hyper-
  liquid's weight per IP, a key's plan) is shared out in leases; more machines behind
  one IP do not buy more Hyperliquid weight.

exit status: 0 done; 1 a source failed for good, a task failed, or verify found
violations; 2 bad input (one line; nothing was requested or written); 3 another run
holds the lake; 4 done, but buckets are left in the gap ledger.
"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "backfill",
        help="fetch, compact and verify a large job as tasks (on a Dask cluster, or here)",
        description="Plan every configured market x interval x source from what the lake "
        "holds and run it as independent, idempotent tasks: extract (one series, one "
        "month), compact (one partition group, one month, then the group's finish), "
        "verify (one group).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="the TOML file (default ./hyperlake.toml)")
    p.add_argument("--lake", help="lake root (overrides the file and $HYPERLAKE_LAKE)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="the Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: Dask's "
                   "scheduler-address setting; none: run in this process)")
    p.add_argument("--stages", default=",".join(STAGES),
                   help=f"which stages, comma-separated (default {','.join(STAGES)})")
    p.add_argument("--start", help="every series from here (a date 2025-01-01 or an ISO "
                   "time; default: each one's start in the file)")
    p.add_argument("--end", help="up to here (default: the last closed bucket)")
    p.add_argument("--prefer", metavar="SOURCES",
                   help="compaction's source precedence, e.g. dwellir,hydromancer,hyperliquid "
                   "(default: the later fetch wins)")
    p.add_argument("--dwellir-key-name",
                   help="which Dwellir key the dwellir CLI should hand over, when several")
    p.add_argument("--dry-run", action="store_true",
                   help="print the tasks the job would run and stop")
    p.add_argument("--json", action="store_true", help="print a one-line JSON summary")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print nothing unless something is wrong")
    p.set_defaults(run=run)


def parse_stages(text: str) -> tuple[str, ...]:
    from hyperlake.errors import UserError

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in STAGES]
    if not names or unknown:
        shown = repr(unknown[0]) if unknown else "nothing"
        raise UserError(f"--stages {text!r}: {shown} is no stage; give some of "
                        f"{','.join(STAGES)}")
    return tuple(s for s in STAGES if s in names)


def _instant(text: str, flag: str) -> int:
    from hyperlake.schemas.times import parse_instant

    day = re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip())
    return parse_instant(f"{text.strip()}T00:00:00Z" if day else text, flag)


def _window(args: argparse.Namespace, config: UpdateConfig,
            settings: SourceSettings) -> tuple[UpdateConfig, int | None]:
    """The configuration with ``--start`` over every start, and the ``--end``."""
    import dataclasses

    from hyperlake.errors import UserError
    from hyperlake.pipelines.update.config import Start
    from hyperlake.schemas.times import format_instant

    now = settings.now_ms()
    end = _instant(args.end, "--end") if args.end else None
    if end is not None and end > now:
        raise UserError(f"--end {format_instant(end)} is in the future (now is "
                        f"{format_instant(now)})")
    if args.start is None:
        return config, end
    start = _instant(args.start, "--start")
    if start >= (end if end is not None else now):
        raise UserError(f"--start {format_instant(start)} must be before "
                        f"{'--end' if end is not None else 'now'} "
                        f"({format_instant(end if end is not None else now)})")
    begin = Start(args.start, at_ms=start)
    candles = tuple(dataclasses.replace(c, start=begin) for c in config.candles)
    return dataclasses.replace(config, candles=candles, funding_start=begin), end


def _executor(args: argparse.Namespace) -> Executor:
    """On the cluster the flag or Dask's setting names, else in this process."""
    from hyperlake.pipelines.backfill.cluster import configured_scheduler
    from hyperlake.pipelines.backfill.executors import LocalExecutor

    address = args.scheduler or configured_scheduler()
    if not address:
        return LocalExecutor()
    from hyperlake.pipelines.backfill.cluster import DaskExecutor, connect

    return DaskExecutor(connect(address))


def run(args: argparse.Namespace) -> int:
    from hyperlake.commands.update import check_keys, resolve_config
    from hyperlake.lake.paths import LakePaths
    from hyperlake.pipelines.compact import validate_precedence

    stages = parse_stages(args.stages)
    precedence = validate_precedence(args.prefer)
    config, settings, lake = resolve_config(args.config, args.lake, args.dwellir_key_name)
    config, end = _window(args, config, settings)
    rate = check_keys(config, settings)
    executor = _executor(args)
    try:
        with LakePaths(lake).writer_lock():  # before the heavy imports: busy is told
            return _run(args, config, settings, lake, executor, stages, end, precedence,
                        rate)
    finally:
        executor.close()


def _run(args: argparse.Namespace, config: UpdateConfig, settings: SourceSettings,
         lake: Any, executor: Executor, stages: tuple[str, ...], end: int | None,
         precedence: tuple[str, ...], rate: float | None) -> int:
    from hyperlake.net.redact import Redactor
    from hyperlake.pipelines.backfill.run import BackfillRequest, BackfillRun

    request = BackfillRequest(stages, end, precedence)
    with BackfillRun(config, settings, lake, request, executor, dwellir_rate=rate,
                     redactor=Redactor(settings.secrets())) as backfill:
        plan = backfill.plan()
        if args.dry_run:
            return _dry_run(args, plan, executor)
        if not args.quiet and not args.json:
            _where(executor)
        outcome = _execute(backfill, plan, args)
    return _finish(args, plan, outcome, executor)


def _where(executor: Executor) -> None:
    print(f"hyperlake backfill: tasks run {_place(executor)}", file=sys.stderr)
    if executor.dashboard:
        print(f"hyperlake backfill: Dask dashboard: {executor.dashboard}", file=sys.stderr)


def _place(executor: Executor) -> str:
    return "in this process" if executor.where == "in-process" else \
        f"on the Dask cluster at {executor.where} ({executor.threads()} threads)"


def _execute(backfill: BackfillRun, plan: BackfillPlan,
             args: argparse.Namespace) -> BackfillOutcome:
    progress = _progress(plan, args)
    try:
        return backfill.execute(plan, progress)
    finally:
        progress.close()


class _Label:
    """A task as a progress bar names it (hashable, unlike the task)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def describe(self) -> str:
        return self.text


class _Bars:
    """``update``'s bars, one per lane (sources, funding, compact, verify)."""

    def __init__(self, totals: dict[str, int]) -> None:
        from hyperlake.commands.output import LaneProgress

        self.lanes = LaneProgress(totals)
        self.labels: dict[str, _Label] = {}

    def __call__(self, lane: str, task: object, done: int) -> None:
        name = str(getattr(task, "name", task))
        label = self.labels.get(name)
        if label is None:
            describe = getattr(task, "describe", None)
            label = self.labels[name] = _Label(describe() if callable(describe) else name)
        self.lanes(lane, label, done)

    def close(self) -> None:
        self.lanes.close()


class _NoBars:
    def __call__(self, lane: str, task: object, done: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(plan: BackfillPlan, args: argparse.Namespace) -> _Bars | _NoBars:
    if args.quiet or args.json or not sys.stderr.isatty():
        return _NoBars()
    return _Bars(plan.units())


def _task_counts(plan: BackfillPlan) -> dict[str, int]:
    from hyperlake.pipelines.backfill.tasks import CompactDays, Extract, FinishGroup, VerifyGroup

    return {"extract": plan.count(Extract), "compact": plan.count(CompactDays),
            "finish": plan.count(FinishGroup), "verify": plan.count(VerifyGroup)}


def _dry_run(args: argparse.Namespace, plan: BackfillPlan, executor: Executor) -> int:
    from hyperlake.commands.jsonline import summary_line

    counts = _task_counts(plan)
    buckets = sum(t.buckets for t in plan.extracts())
    fields = {"dry_run": True, "stages": list(plan.stages), "where": executor.where,
              "markets": len(plan.update.markets), "tasks": counts, "buckets": buckets,
              "lanes": plan.units(),
              "beyond_horizon": [b.as_dict() for b in plan.update.beyond]}
    if args.json:
        print(summary_line(**fields))
        return EXIT_OK
    for task in plan.tasks:
        deps = f" (after {len(task.deps)})" if task.deps else ""
        print(f"{task.lane:<12} {task.describe():<52} {task.units:>10,}{deps}")
    print(f"plan: {counts['extract']} extract tasks ({buckets:,} buckets), "
          f"{counts['compact']} compaction tasks and {counts['finish']} finishes, "
          f"{counts['verify']} verify tasks, over {len(plan.update.markets)} markets; "
          f"they would run {_place(executor)}")
    return EXIT_OK


def _finish(args: argparse.Namespace, plan: BackfillPlan, outcome: BackfillOutcome,
            executor: Executor) -> int:
    from hyperlake.commands.jsonline import summary_line

    errors = list(outcome.errors)
    if outcome.violations:
        errors.append(f"verify found {outcome.violations} violations in what this run "
                      "compacted: run hyperlake verify")
    code = EXIT_ERROR if errors else EXIT_GAPS if outcome.gaps else EXIT_OK
    result = "error" if errors else "gaps" if outcome.gaps else "ok"
    c, stats = outcome.counters, outcome.compaction
    if args.json:
        print(summary_line(
            result=result, exit=code, where=executor.where, dashboard=executor.dashboard,
            stages=list(plan.stages), markets=len(plan.update.markets),
            tasks=_task_counts(plan), tasks_done=outcome.tasks_done,
            planned=sum(t.buckets for t in plan.extracts()), fetched=c.fetched,
            empty=c.empty, retried=c.retried, failed=c.failed,
            provisional=outcome.provisional, gaps=outcome.gap_buckets(),
            requests=c.requests, weight=c.weight,
            beyond_horizon=[b.as_dict() for b in plan.update.beyond],
            compacted_groups=len(stats.groups), parts_consumed=stats.parts_consumed,
            partitions_written=stats.partitions_written,
            partitions_unchanged=stats.partitions_unchanged, rows_out=stats.rows_out,
            verified_series=outcome.verified_series, violations=outcome.violations,
            warnings=outcome.warnings, errors=errors,
            quarantined=outcome.quarantined,
            seconds=round(outcome.seconds, 3)))
    for note in [b.line() for b in plan.update.beyond if b.left or not args.quiet]:
        print(f"hyperlake backfill: {note}", file=sys.stderr)
    if outcome.gaps:
        print(f"hyperlake backfill: {outcome.gap_buckets():,} buckets are in the gap ledger; "
              "the next run retries them (hyperlake status shows where)", file=sys.stderr)
    for line in outcome.quarantined:
        print(f"hyperlake backfill: {line}", file=sys.stderr)
    for error in errors:
        print(f"hyperlake backfill: error: {error}", file=sys.stderr)
    if not args.json and not args.quiet:
        print(f"backfill: {sum(outcome.tasks_done.values())} tasks {_place(executor)}: "
              f"{c.fetched:,} rows, {c.empty:,} empty, {c.failed:,} failed; "
              f"{c.requests:,} requests, weight {c.weight:,.0f}; compacted "
              f"{len(stats.groups)} series into {stats.partitions_written} partitions "
              f"({stats.partitions_unchanged} unchanged); verified "
              f"{outcome.verified_series} series: {outcome.violations} violations, "
              f"{outcome.warnings} warnings; {outcome.seconds:.1f}s")
    return code
