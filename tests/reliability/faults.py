"""Faults of every kind at 1 %, 10 % and 30 % on each endpoint: the run ends with exit 0,
or with exit 4 and every bucket it could not get in the gap ledger (never a silent
hole, never a wrong row); once the source is healthy again, one more run fills the
ledger and the lake is the model's.

Retries are cut to two attempts (``HYPERLAKE_MAX_ATTEMPTS``) so that faults reach the
ledger often enough to be seen. The next run goes to a healthy emulator of the same
market (the stream-level faults of the fault gateway cannot be switched off).
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

from hyperlake.emulator.config import HTTP_FAULT_KINDS, FaultRule
from hyperlake.emulator.server import Emulator
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.paths import LakePaths
from hyperlake.lake.ranges import RangeSet
from tests.pipelines.test_candles_support import warm_universe
from tests.reliability.kills import Stage, candle_stage, checkpoint_rows, funding_stage, last_json
from tests.reliability.support import (
    EXIT_GAPS,
    EXIT_OK,
    StartEmulator,
    Tallies,
    Tally,
    count_rows,
    env_for,
    fast_config,
    leftovers,
    run,
)

RATES = (0.01, 0.1, 0.3)
ENDPOINTS = ("info", "hydromancer", "dwellir")
#: Every kind that makes a request fail (``slow`` only delays it).
KINDS = tuple(kind for kind in HTTP_FAULT_KINDS if kind != "slow")
FAULT_DELAY_S = 0.2  # how long ``timeout`` holds a request before resetting it
ATTEMPTS = "2"


def stages_of(endpoint: str) -> tuple[Stage, ...]:
    """The commands whose requests go to ``endpoint``."""
    if endpoint == "info":
        funding = funding_stage(("BTC", "ETH"), "2026-03-01T00:00:00Z", "2026-03-30T00:00:00Z")
        windowed = Stage(funding.name, (*funding.args, "--hours-per-window", "48"),
                         funding.series)
        return (windowed, candle_stage("hyperliquid", "SOL", "1m", "2026-03-29T00:00:00Z",
                                       "2026-03-30T00:00:00Z"))
    if endpoint == "hydromancer":
        return (candle_stage("hydromancer", "ETH", "1s", "2026-03-29T00:00:00Z",
                             "2026-03-30T00:00:00Z"),)
    return (candle_stage("dwellir", "BTC", "1s", "2026-03-30T04:00:00Z",
                         "2026-03-30T04:10:00Z", "--rate", "8000"),)


def ready(start: StartEmulator, *faults: FaultRule, seed: int = 0) -> Emulator:
    """An emulator with ``faults`` whose market list is in the cache (fetched through
    the faults themselves, as many times as that takes)."""
    emu = start(fast_config(*faults, fault_seed=seed))
    for attempt in range(30):
        try:
            warm_universe(emu)
            break
        except Exception:
            if attempt == 29:
                raise
    return emu


def fault_round(start: StartEmulator, folder: Path, rng: random.Random, endpoint: str,
                kind: str, rate: float) -> Tallies:
    tally = Tally(runs=1)
    lake = folder / "lake"
    rule = FaultRule(endpoint, kind, rate, FAULT_DELAY_S)
    faulty = ready(start, rule, seed=rng.randrange(2**31))
    label = f"{endpoint} {kind} {rate:.0%}"
    tally.note("kind x rate combinations")
    for stage in stages_of(endpoint):
        done = run(stage.argv(lake), env_for(faulty, HYPERLAKE_MAX_ATTEMPTS=ATTEMPTS))
        tally.scan(done.stdout, done.stderr)
        summary = last_json(done.stdout)
        if not tally.expect(done.returncode in (EXIT_OK, EXIT_GAPS),
                            f"{label} {stage.name}: exit {done.returncode}: "
                            f"{done.stderr[-300:]}"):
            continue
        tally.note(f"runs ended {done.returncode}")
        ledgered = RangeSet()
        for key, span in stage.series:
            series = Series(LakePaths(lake), key)
            ledger = RangeSet(gap.span for gap in series.gaps())
            ledgered = ledgered.union(ledger)
            tally.expect(series.missing(span) == ledger.intersect(RangeSet([span])),
                         f"{label} {key.describe()}: missing {series.missing(span)} is not "
                         f"the ledger's {ledger}")
        tally.expect((done.returncode == EXIT_GAPS) == bool(ledgered),
                     f"{label} {stage.name}: exit {done.returncode} with ledger {ledgered}")
        tally.expect((summary.get("gaps", 0) > 0) == bool(ledgered),
                     f"{label} {stage.name}: summary says {summary.get('gaps')} gaps")
    with contextlib.suppress(Exception):
        faulty.stop()
    healthy = ready(start)
    for stage in stages_of(endpoint):
        done = run(stage.argv(lake), env_for(healthy))
        tally.scan(done.stdout, done.stderr)
        tally.expect(done.returncode == EXIT_OK,
                     f"{label} {stage.name}: the run after exited {done.returncode}")
        for (key, span), want in zip(stage.series, stage.expected().values(), strict=True):
            series = Series(LakePaths(lake), key)
            tally.expect(series.done() == RangeSet([span]) and not series.gaps(),
                         f"{label} {key.describe()}: not complete after one more run")
            count_rows(tally, f"{label} {key.describe()}", checkpoint_rows(lake, key), want)
    tally.problems += leftovers(lake)
    return {f"faults on {endpoint}": tally}
