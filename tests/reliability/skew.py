"""Clock skew: a source whose clock is behind ours (by one to ninety minutes, drawn).
The first run stores only what the source had closed by its own clock — never an open
candle as closed, never a bucket it had not reached as confirmed empty — and leaves the
rest provisional; ten minutes later, the source caught up, the next run fills every
provisional bucket and the lake is the model's; a third run has nothing to do.
(The rule itself: ``pipelines.head``, ``tests/pipelines/test_head.py``.)
"""

from __future__ import annotations

import random
from pathlib import Path

from hyperlake.emulator.server import frozen_config
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.paths import LakePaths
from hyperlake.lake.ranges import RangeSet
from hyperlake.schemas.intervals import FIXED_STEP_MS, bucket_opens, next_bucket
from tests.conftest import DWELLIR_KEY
from tests.pipelines.test_candles_support import iso, ms, seed_universe
from tests.reliability.kills import Stage, candle_stage, checkpoint_rows, funding_stage, last_json
from tests.reliability.support import (
    EXIT_OK,
    MINUTE_MS,
    StartEmulator,
    Tallies,
    Tally,
    count_rows,
    env_for,
    run,
)

CLIENT_NOW = ms("2026-03-30T13:00:00Z")
INTERVALS = {"dwellir": ("1s", "1m", "5m"), "hyperliquid": ("1m", "5m", "15m", "1h"),
             "hydromancer": ("1s", "1m", "1h"), "funding": ("1h",)}


def skewed_stage(source: str, interval: str, rng: random.Random) -> Stage:
    """A span ending at our clock's now: the last 60 to 240 buckets."""
    step = FIXED_STEP_MS[interval]
    start = CLIENT_NOW - rng.randint(60, 240) * step
    if source == "funding":
        return funding_stage(("BTC",), iso(start), iso(CLIENT_NOW))
    extra = ("--rate", "8000") if source == "dwellir" else ()
    return candle_stage(source, "BTC", interval, iso(start), iso(CLIENT_NOW), *extra)


def skew_round(start: StartEmulator, folder: Path, rng: random.Random) -> Tallies:
    tally = Tally(runs=1)
    source = rng.choice(sorted(INTERVALS))
    interval = rng.choice(INTERVALS[source])
    lag = rng.randint(1, 90) * MINUTE_MS + rng.randrange(0, MINUTE_MS)
    source_now = CLIENT_NOW - lag
    stage = skewed_stage(source, interval, rng)
    [(key, span)] = stage.series
    [want] = stage.expected().values()
    label = f"{stage.name} {interval}, source {lag // 1000} s behind"
    emu = start(frozen_config(source_now, info_weight_per_minute=10**9,
                              hydromancer_weight_per_minute=10**9,
                              dwellir_rate_overrides={DWELLIR_KEY: 10**6}))
    seed_universe(emu)
    env = env_for(emu, HYPERLAKE_NOW=iso(CLIENT_NOW),
                  HYPERLAKE_SETTLE=str(rng.choice((0, 60, 300))))
    lake = folder / "lake"
    series = Series(LakePaths(lake), key)

    done = run(stage.argv(lake), env)
    tally.scan(done.stdout, done.stderr)
    tally.expect(done.returncode == EXIT_OK, f"{label}: exit {done.returncode}: "
                 f"{done.stderr[-300:]}")
    first = checkpoint_rows(lake, key)
    strange = set(first) - set(want)
    tally.expect(not strange, f"{label}: {len(strange)} rows the source had not closed or "
                 f"never served, e.g. {sorted(strange, key=repr)[:1]}")
    # a candle is final once it has closed; an hour's funding once it is paid (its start)
    late = [open_ms for confirmed in series.done()
            for open_ms in bucket_opens(confirmed.start, confirmed.end, interval)
            if (open_ms if source == "funding" else next_bucket(open_ms, interval))
            > source_now]
    tally.expect(not late, f"{label}: {len(late)} buckets past the source's clock confirmed, "
                 f"the first {iso(late[0]) if late else ''}")
    provisional = series.provisional.spans().intersect(RangeSet([span]))
    tally.note("provisional buckets", int(provisional.total() // FIXED_STEP_MS[interval]))
    tally.note(f"{source} rounds")

    later = CLIENT_NOW + 10 * MINUTE_MS  # time passes; the source catches up
    emu.set_clock(later)
    env["HYPERLAKE_NOW"] = iso(later)
    done = run(stage.argv(lake), env)
    tally.scan(done.stdout, done.stderr)
    tally.expect(done.returncode == EXIT_OK, f"{label}: second run exit {done.returncode}")
    count_rows(tally, label, checkpoint_rows(lake, key), want)
    tally.expect(series.done() == RangeSet([span]) and not series.provisional.spans(),
                 f"{label}: done {series.done()}, provisional {series.provisional.spans()}")
    done = run(stage.argv(lake), env)
    summary = last_json(done.stdout)
    tally.expect(done.returncode == EXIT_OK and summary.get("requests") == 0,
                 f"{label}: a third run asked again: {summary}")
    return {"clock skew": tally}
