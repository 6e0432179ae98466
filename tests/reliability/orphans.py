"""Orphaned workers: ``kill -9`` of a Dwellir run's parent alone (not its group), at a
random instant after its first commit. Its worker processes must be gone within two
seconds, no part may appear after, the lake lock must be free, and the next run must
resume to the model's rows, none twice.
(The mechanism: ``PR_SET_PDEATHSIG`` and a parent check before every commit,
``tests/pipelines/test_candles_workers.py``.)
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from hyperlake.lake.paths import LakePaths
from tests.conftest import on_disk
from tests.pipelines.test_candles_resume import wait_for
from tests.pipelines.test_candles_support import group_members, seed_universe, start_cli
from tests.reliability.kills import candle_stage, checkpoint_rows, consistency
from tests.reliability.support import (
    EXIT_OK,
    StartEmulator,
    Tallies,
    Tally,
    count_rows,
    env_for,
    fast_config,
    kill_and_reap,
    lock_is_free,
    run,
)

#: 14,400 buckets at 4,000 requests/s: ~3.6 s; each worker commits every ~2 s.
STAGE = candle_stage("dwellir", "BTC", "1s", "2026-03-30T08:00:00Z", "2026-03-30T12:00:00Z",
                     "--rate", "4000", "--workers", "2")


def parts(lake: Path) -> list[str]:
    return sorted(str(p) for p in lake.glob("_checkpoints/**/part-*.parquet"))


def orphan_round(start: StartEmulator, folder: Path, rng: random.Random) -> Tallies:
    tally = Tally(runs=1)
    emu = start(fast_config(), gateway=False)
    seed_universe(emu)
    env = env_for(emu)
    lake = folder / "lake"
    process = start_cli(STAGE.argv(lake), env)
    committed = wait_for(lambda: bool(parts(lake)) or process.poll() is not None)
    time.sleep(rng.uniform(0.0, 1.0))
    workers = [pid for pid in group_members(process.pid) if pid != process.pid]
    if process.poll() is None and committed and workers:
        os.kill(process.pid, signal.SIGKILL)  # the parent only
        process.communicate(timeout=30)
        tally.kills += 1
        gone = wait_for(lambda: not group_members(process.pid), timeout=2.0)
        left = parts(lake)
        time.sleep(1.0)
        problems = [] if gone else [f"workers outlived their parent: {workers}"]
        if parts(lake) != left:
            problems.append("a worker committed after its parent died")
        if not lock_is_free(on_disk(LakePaths(lake).lock_file)):
            problems.append("the lake stayed locked")
        problems += consistency(lake, STAGE)
        tally.problems += problems
        tally.survived += not problems
    else:
        tally.note("the run ended before the kill")
    tally.scan(kill_and_reap(process))
    done = run(STAGE.argv(lake), env)
    tally.scan(done.stdout, done.stderr)
    tally.expect(done.returncode == EXIT_OK, f"the resume exited {done.returncode}: "
                 f"{done.stderr[-300:]}")
    [(key, _)] = STAGE.series
    [want] = STAGE.expected().values()
    count_rows(tally, "after the orphans", checkpoint_rows(lake, key), want)
    return {"orphaned workers": tally}
