"""``hyperlake update``: bring every configured series up to date (made for cron)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hyperlake.lake.store import Location
    from hyperlake.pipelines.settings import SourceSettings
    from hyperlake.pipelines.update.config import UpdateConfig
    from hyperlake.pipelines.update.plan import UpdatePlan
    from hyperlake.pipelines.update.run import UpdateOutcome, UpdateRun

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_GAPS = 0, 1, 2, 4
#: A second update while one runs: 0, on purpose (see EPILOG).
EXIT_BUSY = 0
PING_ENV = "HYPERLAKE_PING_URL"
EPILOG = """\
The configuration is ./hyperlake.toml (or --config FILE; hyperlake init writes a
commented example). Environment variables override the file, and flags override both;
--print-config shows the result, keys masked.

exit status:
  0  done (buckets near the head may be provisional: the next run asks again); also
     when another run holds the lake: this one exits at once with one line and touches
     nothing, because the running one is doing the same work and reports its own
     outcome (its status, its ping); under cron an overlap is the normal sign of a
     long first backfill, not a failure. A run that hangs shows in `hyperlake status`
     (lag, last run) and as a missed ping.
  1  an error: a source failed for good (a refused key, ...), or verification found
     violations in what this run changed
  2  bad configuration or environment: one line naming the file, line and key;
     nothing was requested or written
  4  done, but buckets are left in the gap ledger (retried by the next run, or beyond
     every configured source's reach)

--ping-url URL (or $HYPERLAKE_PING_URL, or ping_url in the file), healthchecks.io
style: URL/start when the run begins, URL on success, URL/fail on status 1 or 4; the
body is the JSON summary. Nothing is pinged for a busy lake or a bad configuration.
"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "update",
        help="bring every configured series up to date (candles, funding, asset contexts)",
        description="Plan every configured market x interval x source from what the lake "
        "holds (checkpoint coverage, compacted coverage, the gap ledger), fetch what is "
        "missing up to the last closed bucket, append one asset-context snapshot, then "
        "compact and verify what changed. Quiet when there was nothing to do.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="the TOML file (default ./hyperlake.toml)")
    p.add_argument("--lake", help="lake root (overrides the file and $HYPERLAKE_LAKE)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (series, buckets, requests, weight, time) and stop; "
                   "no request beyond the market list")
    p.add_argument("--json", action="store_true", help="print a one-line JSON summary")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print nothing unless something is wrong (for cron)")
    p.add_argument("--print-config", action="store_true",
                   help="print the effective configuration (keys masked) and stop")
    p.add_argument("--ping-url", help="healthchecks-style URL to ping (start, success, fail)")
    p.add_argument("--dwellir-key-name",
                   help="which Dwellir key the dwellir CLI should hand over, when several")
    p.add_argument("--no-compact", action="store_true", help="do not compact afterwards")
    p.add_argument("--no-verify", action="store_true", help="do not verify afterwards")
    p.set_defaults(run=run)


def _config(args: argparse.Namespace) -> tuple[UpdateConfig, SourceSettings, Location]:
    """The file, the environment and the flags, checked: UserError (exit 2) before any
    request or file."""
    import dataclasses

    config, settings, lake = resolve_config(args.config, args.lake, args.dwellir_key_name)
    config = dataclasses.replace(
        config, ping_url=args.ping_url or os.environ.get(PING_ENV) or config.ping_url,
        compact=config.compact and not args.no_compact,
        verify=config.verify and not args.no_verify)
    return config, settings, lake


def resolve_config(path: str | None, lake_flag: str | None, dwellir_key_name: str | None,
                   ) -> tuple[UpdateConfig, SourceSettings, Location]:
    """The configuration file (``--config`` or ./hyperlake.toml) with the environment
    over it, the sources' settings and the lake (``--lake`` over the environment over
    the file): what ``update`` and ``backfill`` both read. UserError (exit 2) before
    any request or file."""
    from hyperlake.lake.paths import LAKE_ENV, lake_root
    from hyperlake.pipelines.settings import SourceSettings
    from hyperlake.pipelines.update import dwellir_cli
    from hyperlake.pipelines.update.config import environment, load_config

    now_ms = SourceSettings.from_env().now_ms()
    config = load_config(Path(path) if path else None, now_ms)
    env = environment(config, os.environ)
    if "dwellir" in config.used_sources() and not env.get("HYPERLAKE_DWELLIR_KEY"):
        name = dwellir_key_name or config.source("dwellir").key_name
        found = dwellir_cli.discover(name)
        if found is not None:
            env["HYPERLAKE_DWELLIR_KEY"] = found.key
            env.setdefault("HYPERLAKE_DWELLIR_URL", found.base_url)
    settings = SourceSettings.from_env(env)
    lake = lake_root(lake_flag or os.environ.get(LAKE_ENV) or config.lake)
    return config, settings, lake


def check_keys(config: UpdateConfig, settings: SourceSettings) -> float | None:
    """Every key the run needs is there; the Dwellir rate."""
    from hyperlake.errors import UserError
    from hyperlake.pipelines.candles.registry import DWELLIR, REGISTRY

    for name in config.used_sources():
        env_name = REGISTRY[name].key_env
        if env_name is not None and not settings.key(env_name):
            own = config.source(name).key_env
            where = f"${own} (sources.{name}.key_env) or " if own and own != env_name else ""
            raise UserError(f"{name} is configured but no key is set: export {where}"
                            f"{env_name}")
    if "dwellir" not in config.used_sources():
        return None
    dwellir = config.source("dwellir")
    return DWELLIR.rate(dwellir.rate, dwellir.plan)


def run(args: argparse.Namespace) -> int:
    from hyperlake.lake.lock import LakeBusy
    from hyperlake.lake.paths import LakePaths

    config, settings, lake = _config(args)
    if args.print_config:
        from hyperlake.commands.update_config import render

        print(render(config, settings, lake))
        return EXIT_OK
    rate = check_keys(config, settings)
    lock = LakePaths(lake).writer_lock()
    try:
        lock.acquire()  # before the heavy imports: a busy lake is told at once
    except LakeBusy as exc:
        if args.json:
            from hyperlake.commands.jsonline import summary_line

            print(summary_line(result="busy", exit=EXIT_BUSY, message=str(exc)))
        print(f"hyperlake update: {exc}", file=sys.stderr)
        return EXIT_BUSY
    try:
        return _run(args, config, settings, lake, rate)
    finally:
        lock.release()


def _run(args: argparse.Namespace, config: UpdateConfig, settings: SourceSettings, lake: Location,
         rate: float | None) -> int:
    from hyperlake.net.redact import Redactor
    from hyperlake.pipelines.update.ping import Pinger
    from hyperlake.pipelines.update.run import UpdateRun

    redactor = Redactor(settings.secrets())
    with UpdateRun(config, settings, lake, dwellir_rate=rate, redactor=redactor) as up:
        return _run_locked(args, up, config, settings, Pinger(config.ping_url,
                                                               settings.verify()))


def _run_locked(args: argparse.Namespace, up: UpdateRun, config: UpdateConfig,
                settings: SourceSettings, pinger: Any) -> int:
    from hyperlake.commands.update_report import plan_lines, plan_summary

    if args.dry_run:
        plan = up.prepare()
        if args.json:
            print(plan_summary(plan, settings, config))
        else:
            for line in plan_lines(plan, settings, config):
                print(line)
        return EXIT_OK
    pinger.start()
    try:
        plan = up.prepare()
        outcome = _execute(up, plan, args)
    except Exception as exc:  # noqa: BLE001 - recorded, pinged, then re-raised scrubbed
        scrubbed = up.redact.scrub_exception(exc)
        from hyperlake.commands.jsonline import summary_line

        pinger.fail(summary_line(result="error", exit=EXIT_ERROR, message=str(scrubbed)))
        _record_failure(up, str(scrubbed))
        raise scrubbed from None
    return _finish(args, up, plan, outcome, pinger)


def _execute(up: UpdateRun, plan: UpdatePlan, args: argparse.Namespace) -> UpdateOutcome:
    """Run the plan with bars on a terminal. A stop (Ctrl-C, SIGTERM) while a lane is
    still fetching ends the process at once, like ``kill -9``, which the lake is built
    to survive: threads cannot be interrupted, and the lock must not be released while
    one could still commit (the kernel releases it with the process)."""
    progress = _progress(plan, args)
    try:
        return up.execute(plan, progress)
    except BaseException as exc:
        if up.lanes_alive():
            progress.close()
            interrupted = isinstance(exc, KeyboardInterrupt)
            word = "interrupted" if interrupted else "terminated (SIGTERM)"
            print(f"hyperlake update: {word}; what was committed stays, run the same command "
                  "again to resume", file=sys.stderr, flush=True)
            os._exit(130 if interrupted else 143)
        raise
    finally:
        progress.close()


class _NoBars:
    """Progress nobody watches (not a terminal, --quiet, --json): rich is not loaded."""

    def __call__(self, lane: str, series: object, done: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(plan: UpdatePlan, args: argparse.Namespace) -> Any:
    """One bar per lane on a terminal (``LaneProgress``), nothing otherwise."""
    if args.quiet or args.json or not sys.stderr.isatty():
        return _NoBars()
    from hyperlake.commands.output import LaneProgress
    from hyperlake.pipelines.update.plan import FUNDING_LANE

    totals: dict[str, int] = {}
    for item in plan.todo():
        units = item.requests() if item.lane == FUNDING_LANE else item.buckets()
        totals[item.lane] = totals.get(item.lane, 0) + units
    return LaneProgress(totals)


def _record_failure(up: UpdateRun, message: str) -> None:
    from hyperlake.pipelines.update.run import UpdateOutcome

    outcome = UpdateOutcome(up.settings.now_ms(), errors=[message])
    with contextlib.suppress(OSError):  # the error being reported is what matters
        up.record(outcome, "error", EXIT_ERROR)


def _finish(args: argparse.Namespace, up: UpdateRun, plan: UpdatePlan,
            outcome: UpdateOutcome, pinger: Any) -> int:
    from hyperlake.commands.jsonline import summary_line
    from hyperlake.commands.update_report import outcome_fields, outcome_lines

    errors = outcome.errors + ([f"verify found {outcome.violations} violations in what this "
                                "run changed: run hyperlake verify"]
                               if outcome.violations else [])
    code = EXIT_ERROR if errors else EXIT_GAPS if outcome.gaps else EXIT_OK
    result = "error" if errors else "gaps" if outcome.gaps else "ok"
    fields = outcome_fields(plan, outcome, result, code)
    line = summary_line(**fields)
    up.record(outcome, result, code)
    (pinger.success if code == EXIT_OK else pinger.fail)(line)
    if args.json:
        print(line)
    notes, lines = outcome_lines(plan, outcome, args.quiet)
    for note in [*notes, *outcome.quarantined, *pinger.warnings]:
        print(f"hyperlake update: {note}", file=sys.stderr)
    for error in errors:
        print(f"hyperlake update: error: {error}", file=sys.stderr)
    if not args.json and not args.quiet:
        for text in lines:
            print(text)
    return code
