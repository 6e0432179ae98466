"""Eight writers at once on one lake: one works, the others exit 3 with one line, and
not a byte of the lake changes under the refused ones.

Two ways per round:

- *a race*: eight extract runs of eight different series start together; whoever takes
  the lock first holds it for seconds (every answer of the emulator is slow), so the
  seven others meet it. Exactly one exits 0 and its series is the model's; nothing
  of the seven others' series exists, and every file that was in the lake before
  (partitions, coverage markers) is unchanged — content, mtime, inode.
- *a held lock*: another process holds the writer lock and the stream lock; the six
  extract runs, ``compact`` and ``stream`` all exit 3, the lake's tree is unchanged
  and the emulator saw no data request.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

from hyperlake.emulator.config import FaultRule
from hyperlake.lake.paths import LakePaths
from tests.conftest import on_disk
from tests.pipelines.test_candles_support import seed_universe, start_cli
from tests.reliability.kills import Stage, candle_stage, checkpoint_rows, funding_stage
from tests.reliability.support import (
    EXIT_BUSY,
    EXIT_OK,
    StartEmulator,
    Tallies,
    Tally,
    count_rows,
    env_for,
    fast_config,
    hyperlake,
    run,
    tree,
    tree_changes,
)

HOLD_S = 4.0  # every answer waits this long: a winner holds the lock at least so long
WRITERS = (
    candle_stage("dwellir", "BTC", "1s", "2026-03-30T04:00:00Z", "2026-03-30T04:00:10Z",
                 "--rate", "8000"),
    candle_stage("dwellir", "ETH", "1m", "2026-03-30T04:00:00Z", "2026-03-30T04:10:00Z",
                 "--rate", "8000"),
    candle_stage("hydromancer", "ETH", "1s", "2026-03-30T04:00:00Z", "2026-03-30T05:00:00Z"),
    candle_stage("hydromancer", "SOL", "1m", "2026-03-30T04:00:00Z", "2026-03-30T05:00:00Z"),
    candle_stage("hyperliquid", "SOL", "1h", "2026-03-29T00:00:00Z", "2026-03-30T00:00:00Z"),
    candle_stage("hyperliquid", "BTC", "5m", "2026-03-29T00:00:00Z", "2026-03-30T00:00:00Z"),
    funding_stage(("BTC",), "2026-03-20T00:00:00Z", "2026-03-30T00:00:00Z"),
    funding_stage(("ETH",), "2026-03-20T00:00:00Z", "2026-03-30T00:00:00Z"),
)
BEFORE = funding_stage(("SOL",), "2026-03-01T00:00:00Z", "2026-03-05T00:00:00Z")
HOLD_LOCKS = """
import sys
from pathlib import Path
from hyperlake.lake.lock import LakeLock
from hyperlake.lake.paths import LakePaths
paths = LakePaths(Path(sys.argv[1]))
locks = [LakeLock(paths.lock_file), LakeLock(paths.state / "stream.lock")]
for lock in locks:
    lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


def busy_line(tally: Tally, label: str, code: int, stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    tally.expect(code == EXIT_BUSY, f"{label}: exit {code}, not 3: {stderr[-300:]}")
    tally.expect(len(lines) == 1 and "another hyperlake run holds the lake" in lines[0],
                 f"{label}: not one line saying the lake is held: {stderr[-300:]}")


def series_folders(lake: Path, stage: Stage) -> list[Path]:
    paths = LakePaths(lake)
    return [on_disk(folder) for key, _ in stage.series
            for folder in (paths.checkpoint_series(key), paths.gap_ledger(key),
                           paths.provisional(key))]


def race(tally: Tally, start: StartEmulator, lake: Path) -> None:
    emu = start(fast_config(), gateway=False)
    seed_universe(emu)
    emu.set_faults([FaultRule("info", "slow", 1.0, HOLD_S),
                    FaultRule("hydromancer", "slow", 1.0, HOLD_S),
                    FaultRule("dwellir", "slow", 1.0, HOLD_S / 10)])  # 12 requests at least
    env = env_for(emu)
    before = tree(lake, skip=("_state/writer.lock",))
    processes = [start_cli(stage.argv(lake), env) for stage in WRITERS]
    outcomes = [(stage, process, *process.communicate(timeout=180))
                for stage, process in zip(WRITERS, processes, strict=True)]
    winners = [stage for stage, process, _, _ in outcomes if process.returncode == EXIT_OK]
    tally.inputs += len(WRITERS)
    tally.note("race rounds")
    if not tally.expect(len(winners) == 1, "the race had "
                        f"{[(s.name, p.returncode) for s, p, _, _ in outcomes]} exits"):
        return
    winner = winners[0]
    for stage, process, stdout, stderr in outcomes:
        tally.scan(stdout, stderr)
        if stage is winner:
            continue
        busy_line(tally, f"race {stage.name}", process.returncode or 0, stderr)
        tally.expect(not any(folder.exists() for folder in series_folders(lake, stage)),
                     f"race: the refused {stage.args} wrote its series")
    for (key, _), want in zip(winner.series, winner.expected().values(), strict=True):
        count_rows(tally, f"race winner {key.describe()}", checkpoint_rows(lake, key), want)
    mine = [str(folder.relative_to(lake)) for folder in series_folders(lake, winner)]

    def the_winners(change: str) -> bool:
        """A change within the winner's series folders, or of a folder above them."""
        path = change.split(" ", 1)[1]
        return any(path == m or path.startswith(m + "/") or m.startswith(path + "/")
                   for m in mine)

    after = tree(lake, skip=("_state/writer.lock",))
    changed = [c for c in tree_changes(before, after) if not the_winners(c)]
    tally.expect(not changed, f"race: the lake changed beyond the winner's series: {changed[:5]}")


def held(tally: Tally, start: StartEmulator, lake: Path) -> None:
    emu = start(fast_config(), gateway=False)
    seed_universe(emu)
    env = env_for(emu, HYPERLAKE_WS_URL=emu.urls.ws)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCKS, str(lake)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        tally.expect(holder.stdout.readline().strip() == "held", "the holder took no lock")
        before = tree(lake)
        emu.reset_stats()
        argvs = [stage.argv(lake) for stage in WRITERS[::2]] + [
            hyperlake("compact", "--lake", str(lake)),
            hyperlake("stream", "--coins", "BTC", "--lake", str(lake))]
        argvs += [WRITERS[1].argv(lake), WRITERS[3].argv(lake)]
        processes = [start_cli(argv, env) for argv in argvs]
        for argv, process in zip(argvs, processes, strict=True):
            stdout, stderr = process.communicate(timeout=120)
            tally.scan(stdout, stderr)
            busy_line(tally, f"held {argv[3:5]}", process.returncode or 0, stderr)
        tally.inputs += len(argvs)
        data = {k: v for k, v in emu.stats().items()
                if k.endswith("_requests")}
        tally.expect(not any(data.values()), f"refused runs sent requests: {data}")
        tally.expect(tree(lake) == before, "refused runs changed the lake: "
                     f"{tree_changes(before, tree(lake))[:5]}")
    finally:
        if holder.stdin is not None:
            holder.stdin.close()
        holder.wait(timeout=30)


def writers_round(start: StartEmulator, folder: Path, rng: random.Random) -> Tallies:
    tally = Tally(runs=1)
    lake = folder / "lake"
    emu = start(fast_config(), gateway=False)
    seed_universe(emu)
    env = env_for(emu)
    for argv in (BEFORE.argv(lake), hyperlake("compact", "--lake", str(lake))):
        done = run(argv, env)
        tally.expect(done.returncode == EXIT_OK, f"setting up: {argv[3]} exited "
                     f"{done.returncode}: {done.stderr[-300:]}")
    steps = [held, race]
    rng.shuffle(steps)
    for step in steps:
        step(tally, start, lake)
    return {"8 concurrent writers": tally}
