"""A disk that fills up: extraction and compaction into a small file system (a tmpfs
mounted for the round) until ENOSPC. Each ends with one clear error line (exit 1,
"No space left on device", what to do), the lake that was there before is intact
(``verify`` passes on it, its rows unchanged, no temporary left visible), and once
there is space again the same command completes the job: extraction to the model's
rows, compaction byte-identical to an uninterrupted compaction of the same checkpoints.

Needs root and a kernel that lets it mount a tmpfs; elsewhere the round says why it
cannot run (the tests skip with that reason).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from hyperlake.lake.checkpoints import Series
from hyperlake.lake.paths import LakePaths
from tests.pipelines.test_candles_support import seed_universe
from tests.reliability.kills import (
    Stage,
    candle_stage,
    checkpoint_rows,
    compacted_rows,
    funding_stage,
)
from tests.reliability.support import (
    EXIT_OK,
    EXIT_OTHER,
    StartEmulator,
    Tallies,
    Tally,
    count_rows,
    env_for,
    fast_config,
    fill,
    hyperlake,
    lake_hashes,
    leftovers,
    mount_problem,
    one_line_error,
    run,
    small_filesystem,
)

BEFORE = funding_stage(("BTC",), "2026-03-01T00:00:00Z", "2026-03-11T00:00:00Z")
#: What no longer fits: about 0.5 MB of checkpoints each.
TOO_BIG = (
    candle_stage("hydromancer", "ETH", "1s", "2026-03-29T00:00:00Z", "2026-03-30T00:00:00Z"),
    candle_stage("dwellir", "ETH", "1s", "2026-03-29T00:00:00Z", "2026-03-29T06:00:00Z",
                 "--rate", "8000"),
    funding_stage(("ETH", "SOL"), "2025-09-01T00:00:00Z", "2026-03-01T00:00:00Z"),
)
SIZE_KIB = 8192  # room for everything; each round fills it up first


def verify_passes(tally: Tally, lake: Path, env: dict[str, str], when: str) -> None:
    done = run(hyperlake("verify", "--lake", str(lake)), env)
    tally.scan(done.stdout, done.stderr)
    tally.expect(done.returncode == EXIT_OK,
                 f"{when}: verify exited {done.returncode}: {done.stdout[-600:]}")


def count_everywhere(tally: Tally, lake: Path, stage: Stage) -> None:
    """The stage's rows wherever they are, compacted or still in checkpoint parts (the
    same row in both counts once), against the model's."""
    compacted = compacted_rows(lake)
    for (key, _), (group, want) in zip(stage.series, stage.expected().items(), strict=True):
        rows = set(checkpoint_rows(lake, key)) | set(compacted.get(group, []))
        count_rows(tally, f"{key.describe()} after compact hit ENOSPC", sorted(rows), want)


def disk_full_round(start: StartEmulator, folder: Path, rng: random.Random,
                    stage: Stage | None = None) -> Tallies:
    """``stage`` (default: drawn from TOO_BIG) into a full disk, then compaction."""
    tally = Tally(runs=1)
    why = mount_problem()
    if why is not None:
        tally.note(f"skipped: {why}")
        tally.runs = 0
        return {"disk full": tally}
    emu = start(fast_config(), gateway=False)
    seed_universe(emu)
    env = env_for(emu)
    stage = stage or rng.choice(TOO_BIG)
    with small_filesystem(folder / "small", SIZE_KIB) as disk:
        lake = disk / "lake"
        for argv in (BEFORE.argv(lake), hyperlake("compact", "--lake", str(lake))):
            done = run(argv, env)
            tally.expect(done.returncode == EXIT_OK, f"setting up: {done.stderr[-300:]}")
        before = compacted_rows(lake)

        filler = fill(disk, rng.randrange(0, 64_000))  # each stage needs 150 KB or more
        done = run(stage.argv(lake), env)
        one_line_error(tally, f"{stage.name} on a full disk", done, EXIT_OTHER,
                       "No space left on device", "free some space")
        filler.unlink()
        tally.expect(compacted_rows(lake) == before, "the full disk changed the lake's rows")
        tally.problems += leftovers(lake)
        verify_passes(tally, lake, env, f"after {stage.name} hit ENOSPC")
        done = run(stage.argv(lake), env)
        tally.scan(done.stdout, done.stderr)
        tally.expect(done.returncode == EXIT_OK,
                     f"{stage.name} with space again exited {done.returncode}: "
                     f"{done.stderr[-300:]}")
        for (key, _), want in zip(stage.series, stage.expected().values(), strict=True):
            count_rows(tally, f"{stage.name} {key.describe()}", checkpoint_rows(lake, key), want)
            tally.expect(not Series(LakePaths(lake), key).gaps(), "gaps after the rerun")

        reference = folder / "reference"
        shutil.copytree(lake, reference)
        done = run(hyperlake("compact", "--lake", str(reference)), env)
        tally.expect(done.returncode == EXIT_OK, f"reference compact: {done.stderr[-300:]}")

        parts = sum(p.stat().st_size for p in (lake / "_checkpoints").rglob("*.parquet"))
        filler = fill(disk, int(rng.uniform(0.0, 0.5) * parts))
        done = run(hyperlake("compact", "--lake", str(lake)), env)
        one_line_error(tally, "compact on a full disk", done, EXIT_OTHER,
                       "No space left on device", "free some space")
        filler.unlink()
        count_everywhere(tally, lake, stage)
        tally.problems += leftovers(lake)
        verify_passes(tally, lake, env, "after compact hit ENOSPC")
        done = run(hyperlake("compact", "--lake", str(lake)), env)
        tally.expect(done.returncode == EXIT_OK, f"compact with space: {done.stderr[-300:]}")
        tally.compactions += 1
        tally.identical += lake_hashes(lake) == lake_hashes(reference)
        tally.problems += leftovers(lake, compacted=True)
    return {"disk full": tally}
