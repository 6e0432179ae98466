"""``kill -9`` at random instants of every writing stage, then resume.

One round builds two lakes from the same emulator: a *clean* one, each stage run once
uninterrupted, and a *killed* one, each stage SIGKILLed (its whole process group) at
instants drawn uniformly over how long the run would take — start-up (timed on a run
with nothing to do) plus the share of the clean run's work still missing — so a kill
lands anywhere: start-up, lock, sweep, plan, fetch, commit, ledger. After every kill:
parts disjoint, each row once, no live process, the lock free. After the resume: the
series done, nothing in the ledger, the rows the model's. Then compaction is killed
the same way on the killed lake and resumed; its partitions must be byte-identical to
an uninterrupted compaction of the same checkpoints, and both lakes must hold the same
rows (cross-stage: the same lake whatever was interrupted), with no temporary, lock or
checkpoint left behind.

Stages, one series each so compaction keeps one source per key: Dwellir BTC 1s (two
worker processes), Hydromancer ETH 1s (12 windows), Hyperliquid SOL 1m (one request),
funding BTC, ETH, SOL (21 windows). The emulator answers Hydromancer and /info
slowly (a ``slow`` fault on every request) so each run lasts long enough to be hit
in the middle.
"""

from __future__ import annotations

import itertools
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from hyperlake.emulator.config import FaultRule
from hyperlake.emulator.server import Emulator
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.query.catalog import connect
from hyperlake.schemas.candles import CANDLE_SCHEMA
from hyperlake.schemas.funding import FUNDING_SCHEMA
from tests.conftest import on_disk
from tests.pipelines.test_candles_support import (
    expected_rows,
    group_members,
    ms,
    rows_of,
    seed_universe,
    start_cli,
)
from tests.pipelines.test_funding_support import model_hours, model_rows
from tests.reliability.support import (
    EXIT_OK,
    StartEmulator,
    Tallies,
    Tally,
    count_rows,
    coverage_markers,
    env_for,
    fast_config,
    hyperlake,
    kill_and_reap,
    lake_hashes,
    leftovers,
    lock_is_free,
    run,
    timed_run,
)

#: A row as compared: candles (t, o, h, l, c, v, q, n), funding (time, rate, premium).
Row = tuple[Any, ...]
#: (dataset, market, interval) of a group of rows.
Group = tuple[str, str, str]
SLOW_S = 0.04  # each Hydromancer and /info answer waits this long


@dataclass(frozen=True)
class Stage:
    """One extract command and the series it fills."""

    name: str
    args: tuple[str, ...]
    series: tuple[tuple[SeriesKey, Span], ...]

    def argv(self, lake: Path) -> list[str]:
        return hyperlake(*self.args, "--lake", str(lake), "--json")

    def expected(self) -> dict[Group, list[Row]]:
        out: dict[Group, list[Row]] = {}
        for key, span in self.series:
            group = (key.dataset, key.market, key.interval)
            if key.dataset == "funding":
                out[group] = list(model_rows(key.market, model_hours(span.start, span.end)))
            else:
                out[group] = list(expected_rows(key.source, key.interval, span.start, span.end,
                                                key.market))
        return out


def candle_stage(source: str, market: str, interval: str, start: str, end: str,
                 *extra: str) -> Stage:
    span = Span(ms(start), ms(end))
    return Stage(f"candles {source}",
                 ("candles", "--source", source, "--market", market, "--interval", interval,
                  "--start", start, "--end", end, *extra),
                 ((SeriesKey("candles", source, market, interval), span),))


def funding_stage(coins: tuple[str, ...], start: str, end: str) -> Stage:
    span = Span(ms(start), ms(end))
    return Stage("funding", ("funding", "--coins", ",".join(coins), "--start", start, "--end",
                             end, "--threads", "2"),
                 tuple((SeriesKey("funding", "hyperliquid", c, "1h"), span) for c in coins))


STAGES = (
    candle_stage("dwellir", "BTC", "1s", "2026-03-30T12:00:00Z", "2026-03-30T12:15:00Z",
                 "--rate", "1000", "--workers", "2"),
    candle_stage("hydromancer", "ETH", "1s", "2026-03-29T00:00:00Z", "2026-03-29T16:00:00Z"),
    candle_stage("hyperliquid", "SOL", "1m", "2026-03-28T00:00:00Z", "2026-03-30T00:00:00Z"),
    funding_stage(("BTC", "ETH", "SOL"), "2026-01-01T00:00:00Z", "2026-03-30T00:00:00Z"),
)


def slow_emulator(start: StartEmulator) -> Emulator:
    emu = start(fast_config(FaultRule("info", "slow", 1.0, SLOW_S),
                            FaultRule("hydromancer", "slow", 1.0, SLOW_S)), gateway=False)
    seed_universe(emu)
    return emu


# -- reading what a lake holds -----------------------------------------------------------


def checkpoint_rows(lake: Path, key: SeriesKey) -> list[Row]:
    """Every row of every part of the series, duplicates kept."""
    series = Series(LakePaths(lake), key)
    if key.dataset == "funding":
        table = series.read_parts(FUNDING_SCHEMA)
        return list(zip(table.column("time").cast(pa.int64()).to_pylist(),
                        table.column("fundingRate").to_pylist(),
                        table.column("premium").to_pylist(), strict=True))
    return list(rows_of(series.read_parts(CANDLE_SCHEMA)))


def compacted_rows(lake: Path) -> dict[Group, list[Row]]:
    """Every row of the compacted lake, by (dataset, market, interval), duplicates kept."""
    out: dict[Group, list[Row]] = {}
    with connect(lake) as con:
        for market, interval, *row in con.execute(
                "SELECT market, interval, epoch_ms(t), o, h, l, c, v, q, n FROM candles "
                "ORDER BY ALL").fetchall():
            out.setdefault(("candles", market, interval), []).append(tuple(row))
        for market, *row in con.execute(
                "SELECT market, epoch_ms(time), fundingRate, premium FROM funding "
                "ORDER BY ALL").fetchall():
            out.setdefault(("funding", market, "1h"), []).append(tuple(row))
    return out


def consistency(lake: Path, stage: Stage) -> list[str]:
    """What any instant of a run may leave: disjoint parts, each row once."""
    problems = []
    for key, _ in stage.series:
        spans = [span for span, _ in Series(LakePaths(lake), key).parts()]
        problems += [f"{key.describe()}: parts {a} and {b} overlap"
                     for a, b in itertools.pairwise(spans) if a.end > b.start]
        keys = [row[0] for row in checkpoint_rows(lake, key)]
        if len(keys) != len(set(keys)):
            problems.append(f"{key.describe()}: {len(keys) - len(set(keys))} rows twice")
    lock = on_disk(LakePaths(lake).lock_file)
    if not lock_is_free(lock):
        problems.append("the lake lock is held after the kill")
    return problems


def resumed(lake: Path, stage: Stage) -> list[str]:
    """After the resume: every series done, nothing failed or provisional."""
    problems = []
    for key, span in stage.series:
        series = Series(LakePaths(lake), key)
        if series.done() != RangeSet([span]):
            problems.append(f"{key.describe()}: done {series.done()}, not {span}")
        if series.gaps() or series.provisional.spans():
            problems.append(f"{key.describe()}: ledger or provisional entries left")
    return problems


# -- killing ----------------------------------------------------------------------------


def kill_at(argv: list[str], env: dict[str, str], delay: float) -> tuple[bool, str]:
    """Start the command, SIGKILL its process group ``delay`` seconds later. Whether it
    was still running then, and what it printed on stderr."""
    process = start_cli(argv, env)
    time.sleep(delay)
    alive = process.poll() is None
    stderr = kill_and_reap(process)
    left = group_members(process.pid)
    return alive and not left, stderr


def attempts(tally: Tally, kills: int) -> Iterator[int]:
    """Tries until ``kills`` kills have landed inside a run (a run that ended before
    its instant was not hit: it resumes the next try), three times that at most."""
    start = tally.kills
    for attempt in range(3 * kills):
        if tally.kills - start >= kills:
            return
        yield attempt


def reset(lake: Path, stage: Stage) -> None:
    """Remove every file of the stage's series, as if it had never run."""
    paths = LakePaths(lake)
    for key, _ in stage.series:
        for folder in (paths.checkpoint_series(key), paths.gap_ledger(key),
                       paths.provisional(key)):
            shutil.rmtree(on_disk(folder), ignore_errors=True)


def missing_share(lake: Path, stage: Stage) -> float:
    """How much of the stage's spans the lake still lacks (0 to 1)."""
    total = sum(len(span) for _, span in stage.series)
    missing = sum(Series(LakePaths(lake), key).missing(span).total()
                  for key, span in stage.series)
    return missing / total


def kill_stage(tally: Tally, lake: Path, stage: Stage, env: dict[str, str], seconds: float,
               idle: float, kills: int, rng: random.Random) -> None:
    """``kills`` kills at random instants of ``stage``, then the resume. Each instant is
    drawn over how long the run would take now: start-up (``idle``) plus the share of
    the uninterrupted run's work (``seconds``) still missing."""
    argv = stage.argv(lake)
    for _ in attempts(tally, kills):
        share = missing_share(lake, stage)
        if share == 0:  # the kill before missed: the run finished; start the stage over
            reset(lake, stage)
            share = 1.0
        expected = idle + share * max(0.0, seconds - idle)
        landed, stderr = kill_at(argv, env, rng.uniform(0.0, 1.0) * expected)
        tally.scan(stderr)
        problems = consistency(lake, stage)
        tally.problems += problems
        if landed:
            tally.kills += 1
            tally.survived += not problems
    done = run(argv, env)
    tally.scan(done.stdout, done.stderr)
    if not tally.expect(done.returncode == EXIT_OK,
                        f"{stage.name}: resume exited {done.returncode}: {done.stderr[-300:]}"):
        return
    tally.problems += resumed(lake, stage)
    for (group, want), (key, _) in zip(stage.expected().items(), stage.series, strict=True):
        count_rows(tally, f"{stage.name} {group}", checkpoint_rows(lake, key), want)


def compact_argv(lake: Path) -> list[str]:
    return hyperlake("compact", "--lake", str(lake), "--json")


def start_compacting(lake: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``hyperlake compact`` once it holds the lake lock (its imports done) or exited."""
    process = start_cli(compact_argv(lake), env)
    lock, holder = on_disk(LakePaths(lake).lock_file), f"pid {process.pid}:"
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if lock.read_text().startswith(holder):
                break
        except OSError:
            pass
        time.sleep(0.002)
    return process


def kill_compaction(tally: Tally, lake: Path, reference: Path, pristine: Path,
                    env: dict[str, str], work_seconds: float, kills: int,
                    rng: random.Random) -> None:
    """Kill ``hyperlake compact`` at random instants of its work (drawn over the share of
    parts still to compact), resume, and compare with the uninterrupted compaction of
    the same checkpoints, byte for byte. A kill that missed (the run ended first) puts
    the lake back as it was before compaction (``pristine``) for the next try."""
    total = len(list((lake / "_checkpoints").rglob("part-*.parquet")))
    for _ in attempts(tally, kills):
        left = len(list((lake / "_checkpoints").rglob("part-*.parquet")))
        if not left:  # the kill before missed: the run compacted everything; start over
            shutil.rmtree(lake)
            shutil.copytree(pristine, lake)
            left = total
        process = start_compacting(lake, env)
        time.sleep(rng.uniform(0.0, 1.0) * work_seconds * left / total)
        landed = process.poll() is None
        tally.scan(kill_and_reap(process))
        if landed:
            tally.kills += 1
            problems = [] if lock_is_free(on_disk(LakePaths(lake).lock_file)) else ["lock held"]
            tally.problems += problems
            tally.survived += not problems
    done = run(compact_argv(lake), env)
    tally.scan(done.stdout, done.stderr)
    tally.expect(done.returncode == EXIT_OK, f"compact resume exited {done.returncode}")
    tally.compactions += 1
    same = lake_hashes(lake) == lake_hashes(reference) and \
        coverage_markers(lake) == coverage_markers(reference)
    tally.identical += same
    tally.expect(bool(lake_hashes(lake)), "compaction wrote no partition")


# -- the round -----------------------------------------------------------------------------


def clean_runs(tallies: Tallies, clean: Path, env: dict[str, str]
               ) -> dict[str, tuple[float, float]]:
    """Each stage uninterrupted into the clean lake: how long it took, and how long the
    same command takes once there is nothing left to do (start-up, lock, plan)."""
    durations: dict[str, tuple[float, float]] = {}
    for stage in STAGES:
        tally = tallies[f"kill -9: {stage.name}"]
        done, seconds = timed_run(stage.argv(clean), env)
        tally.scan(done.stdout, done.stderr)
        if tally.expect(done.returncode == EXIT_OK, f"{stage.name}: clean run exited "
                        f"{done.returncode}: {done.stderr[-300:]}"):
            _, idle = timed_run(stage.argv(clean), env)
            durations[stage.name] = (seconds, idle)
    return durations


def stages_round(start: StartEmulator, folder: Path, rng: random.Random,
                 kills: int = 1, compaction_kills: int = 2) -> Tallies:
    """Clean lake, killed lake, compaction killed: one tally per stage, one for the
    compaction, one for the cross-stage comparison."""
    emu = slow_emulator(start)
    env = env_for(emu)
    clean, killed, reference = folder / "clean", folder / "killed", folder / "reference"
    tallies: Tallies = {f"kill -9: {stage.name}": Tally(runs=1) for stage in STAGES}
    across = tallies["same lake across stages"] = Tally(runs=1)

    durations = clean_runs(tallies, clean, env)
    for stage in STAGES:
        if stage.name in durations:
            kill_stage(tallies[f"kill -9: {stage.name}"], killed, stage, env,
                       *durations[stage.name], kills, rng)

    pristine = folder / "before-compaction"
    shutil.copytree(killed, reference)
    shutil.copytree(killed, pristine)
    compaction = tallies["kill -9: compaction"] = Tally(runs=1)
    done, _ = timed_run(compact_argv(reference), env)
    compaction.scan(done.stdout, done.stderr)
    if compaction.expect(done.returncode == EXIT_OK, f"compact exited {done.returncode}"):
        work = float(last_json(done.stdout).get("seconds", 0.5))
        kill_compaction(compaction, killed, reference, pristine, env, work, compaction_kills,
                        rng)

    done = run(compact_argv(clean), env)
    across.scan(done.stdout, done.stderr)
    across.expect(done.returncode == EXIT_OK, f"clean compact exited {done.returncode}")
    killed_rows, clean_rows = compacted_rows(killed), compacted_rows(clean)
    across.expect(killed_rows == clean_rows,
                  "the killed-and-resumed lake holds other rows than the clean one")
    for stage in STAGES:
        for group, want in stage.expected().items():
            count_rows(across, f"lake {group}", killed_rows.get(group, []), want)
    for lake in (killed, clean):
        across.problems += [f"{lake.name}: {p}" for p in leftovers(lake, compacted=True)]
    return tallies


def last_json(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    found: dict[str, Any] = orjson.loads(lines[-1]) if lines else {}
    return found

