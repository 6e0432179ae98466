"""The reliability battery: every check of ``tests/reliability`` many times over, with
fresh seeds, against the bundled emulator on loopback; one table at the end.

    python scripts/reliability.py [--quick] [--scale X] [--seed N] [--only WORD[,WORD]]

The suite (``python -m pytest tests/reliability``, about a minute) runs each check once
or twice with fixed seeds; this battery runs the same code for minutes:

- ``kill -9`` at random instants of every stage (Dwellir, Hydromancer and Hyperliquid
  candles, funding, compaction; the stream), dozens per stage, then resume: the lake
  equal to an uninterrupted run (rows; compaction byte for byte), no temporary, stale
  lock or orphan checkpoint left;
- faults of every kind at 1 %, 10 % and 30 % on each endpoint: exit 0 or 4 with the
  failures in the gap ledger, then one more run fills it;
- eight concurrent writers, a few rounds; ~500 fuzzed command lines (a tenth as real
  processes); writing ``sql`` statements in any dress; ENOSPC rounds (root: a tmpfs);
  truncated partitions and checkpoint parts; keys under faults and refused; a source
  whose clock is behind ours; orphaned Dwellir workers; ``--output`` onto FIFOs,
  symlinks and device nodes made in a temporary folder.

Progress goes to stderr, one line a round (with what broke, if anything); the table
goes to stdout, in Markdown. Exit status 0 when every check is clean, 1 otherwise.
``--quick`` takes a couple of minutes, the default a quarter of an hour on 2 cores
(``--scale`` multiplies the rounds). Results only mean something on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' helpers

from tests.conftest import NOWHERE
from tests.reliability import (
    corruption,
    disk_full,
    faults,
    fuzzing,
    keys,
    kills,
    orphans,
    outputs,
    skew,
    statements,
    stream_kills,
    writers,
)
from tests.reliability.support import (
    StartEmulator,
    Tallies,
    Tally,
    emulator_pool,
    merge_into,
)

#: A round: (emulators, its own folder, its seeded randomness) → tallies by check.
Round = Callable[[StartEmulator, Path, random.Random], Tallies]
#: Columns a check measures (the others show NONE).
KILLS, ROWS, COMPACTIONS, INPUTS, KEYS = "kills", "rows", "compactions", "inputs", "keys"
NONE = "-"


@dataclass(frozen=True)
class Check:
    name: str  # a word of it selects it with --only
    rounds: int  # at --scale 1
    quick: int  # with --quick
    make: Callable[[int, float], Round]  # (round index, scale) → the round


def fault_combos() -> list[tuple[str, str, float]]:
    return [(endpoint, kind, rate) for endpoint in faults.ENDPOINTS for kind in faults.KINDS
            for rate in faults.RATES]


def fault_check(quick: bool) -> Callable[[int, float], Round]:
    """Every (endpoint, kind, rate) in turn; quick: each (endpoint, rate) with one kind."""
    combos = fault_combos()
    draw = random.Random(0)
    sample = [(endpoint, draw.choice(faults.KINDS), rate) for endpoint in faults.ENDPOINTS
              for rate in faults.RATES]

    def make(index: int, scale: float) -> Round:
        chosen = sample if quick else combos
        endpoint, kind, rate = chosen[index % len(chosen)]
        return lambda start, folder, rng: faults.fault_round(start, folder, rng, endpoint,
                                                             kind, rate)
    return make


def checks(quick: bool) -> list[Check]:
    per_endpoint = len(faults.KINDS) * len(faults.RATES)
    return [
        Check("kill -9 of every stage, same lake", 6, 1,
              lambda i, s: lambda st, f, r: kills.stages_round(
                  st, f, r, kills=2 if quick else 5, compaction_kills=2 if quick else 5)),
        Check("kill -9 of the stream", 4, 1,
              lambda i, s: lambda st, f, r: stream_kills.stream_round(
                  st, f, r, kills=2 if quick else 5)),
        Check("faults", len(faults.ENDPOINTS) * per_endpoint, 9, fault_check(quick)),
        Check("8 concurrent writers", 3, 1,
              lambda i, s: lambda st, f, r: writers.writers_round(st, f, r)),
        Check("fuzzed command lines", 1, 1, lambda i, s: fuzz_round(150 if quick else int(500 * s),
                                                                    0.05 if quick else 0.1)),
        Check("sql statement classes", 1, 1,
              lambda i, s: lambda st, f, r: statements.statement_round(
                  f, r, 60 if quick else int(300 * s))),
        Check("disk full", 6, 1, lambda i, s: lambda st, f, r: disk_full.disk_full_round(
            st, f, r, stage=disk_full.TOO_BIG[i % len(disk_full.TOO_BIG)])),
        Check("corrupted files", 8, 1, lambda i, s: lambda st, f, r: corruption.corruption_round(
            st, f, r, kind=("partitions", "checkpoint parts")[i % 2])),
        Check("secrets", 2, 1, lambda i, s: lambda st, f, r: keys.keys_round(st, f, r)),
        Check("clock skew", 12, 3, lambda i, s: lambda st, f, r: skew.skew_round(st, f, r)),
        Check("orphaned workers", 8, 1,
              lambda i, s: lambda st, f, r: orphans.orphan_round(st, f, r)),
        Check("special-file outputs", 1, 1, lambda i, s: lambda st, f, r: outputs.outputs_round(
            f, r, 40 if quick else int(200 * s))),
    ]


def fuzz_round(examples: int, share: float) -> Round:
    def one(start: StartEmulator, folder: Path, rng: random.Random) -> Tallies:
        tally = Tally(runs=1)
        with fuzzing.fuzz_world(start, folder) as world:
            fuzzing.fuzz(world, tally, examples, rng.randrange(2**31), share)
        return {"fuzzed command lines": tally}
    return one


# -- running ------------------------------------------------------------------------------


@contextlib.contextmanager
def stdout_for_the_table() -> Iterator[None]:
    """Meanwhile, what anything writes on standard output (the emulator's fault gateways
    announce their ports there) goes to stderr: stdout is the table's alone."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def private_environment(root: Path) -> Iterator[None]:
    """What conftest gives each test: own pacing and cache folders, and every source
    pointing at a closed loopback port unless a round names the emulator."""
    saved = dict(os.environ)
    os.environ.update({"HYPERLAKE_PACING_DIR": str(root / "pacing"),
                       "HYPERLAKE_CACHE_DIR": str(root / "cache"),
                       "HYPERLAKE_HYPERLIQUID_URL": NOWHERE,
                       "HYPERLAKE_HYDROMANCER_URL": NOWHERE,
                       "HYPERLAKE_DWELLIR_URL": NOWHERE})
    os.environ.pop("HYPERLAKE_LAKE", None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_round(check: Check, index: int, scale: float, seed: int, root: Path) -> Tallies:
    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix=f"round-{index}-", dir=root))
    started = time.monotonic()
    try:
        with emulator_pool() as start:
            found = check.make(index, scale)(start, folder, rng)
    except Exception:  # noqa: BLE001 - a round that crashed is a failed round, not the end
        found = {check.name: Tally(runs=1, problems=[f"round crashed (seed {seed}): "
                                                     f"{traceback.format_exc()[-1500:]}"])}
    seconds = time.monotonic() - started
    for name, tally in found.items():
        state = "ok" if tally.clean() else f"{len(tally.problems)} problems"
        print(f"  {name} round {index + 1} (seed {seed}): {state} in {seconds:.1f}s",
              file=sys.stderr, flush=True)
        for problem in tally.problems[:5]:
            print(f"    {problem[:400]}", file=sys.stderr)
    return found


# -- the table ----------------------------------------------------------------------------

HEADER = ("check", "runs", "kills survived", "rows lost", "rows duplicated",
          "byte-identical compactions", "inputs tried", "tracebacks", "key bytes found", "result")


def measures(name: str) -> set[str]:
    """Which columns the row of check ``name`` measures (the others show NONE)."""
    if name == "kill -9: compaction":
        return {KILLS, COMPACTIONS}
    if name.startswith("kill -9") or name == "orphaned workers":
        return {KILLS, ROWS}
    if name == "disk full":
        return {ROWS, COMPACTIONS}
    if name == "secrets":
        return {INPUTS, KEYS}
    if name == "8 concurrent writers":
        return {ROWS, INPUTS}
    if name in ("fuzzed command lines", "sql statement classes", "special-file outputs"):
        return {INPUTS}
    return {ROWS}  # faults, corrupted files, clock skew


def result(tally: Tally) -> str:
    skipped = [note for note in tally.notes if note.startswith("skipped")]
    if skipped and tally.runs == 0:
        return skipped[0]
    if not tally.clean():
        return f"FAIL ({len(tally.problems)} problems)"
    extra = {key: n for key, n in tally.notes.items() if key in (
        "kind x rate combinations", "runs ended 4", "provisional buckets", "exit 2", "exit 3",
        "refused")}
    return "ok" + (f" ({', '.join(f'{k}: {n}' for k, n in extra.items())})" if extra else "")


def row(name: str, tally: Tally) -> list[str]:
    got = measures(name)

    def show(column: str, text: str) -> str:
        return text if column in got else NONE

    return [name, str(tally.runs),
            show(KILLS, f"{tally.survived}/{tally.kills}"),
            show(ROWS, str(tally.rows_lost)), show(ROWS, str(tally.rows_duplicated)),
            show(COMPACTIONS, f"{tally.identical}/{tally.compactions}"),
            show(INPUTS, str(tally.inputs)), str(tally.tracebacks),
            show(KEYS, str(tally.key_bytes)), result(tally)]


def table(total: Tallies) -> str:
    rows = [row(name, tally) for name, tally in total.items()]
    tracebacks = sum(t.tracebacks for t in total.values())
    rows.append(["tracebacks found (target 0)", str(sum(t.runs for t in total.values())),
                 NONE, NONE, NONE, NONE, str(sum(t.inputs for t in total.values())),
                 str(tracebacks), NONE, "ok" if tracebacks == 0 else "FAIL"])
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a couple of minutes")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the rounds (and fuzzed inputs) by this")
    parser.add_argument("--seed", type=int, default=None, help="seed of the seeds (default: "
                        "the clock; printed, so a run can be repeated)")
    parser.add_argument("--only", default="", help="comma-separated words: only the checks "
                        "whose name holds one (e.g. kill,faults)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    seeds = random.Random(seed)
    words = [w.strip() for w in args.only.split(",") if w.strip()]
    chosen = [c for c in checks(args.quick) if not words or any(w in c.name for w in words)]
    print(f"reliability battery: seed {seed}, {'quick' if args.quick else f'scale {args.scale}'}"
          f", checks: {', '.join(c.name for c in chosen)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    total: Tallies = {}
    with tempfile.TemporaryDirectory(prefix="hyperlake-reliability-") as folder:
        root = Path(folder)
        with private_environment(root), stdout_for_the_table():
            for check in chosen:
                rounds = check.quick if args.quick else max(1, round(check.rounds * args.scale))
                print(f"{check.name}: {rounds} rounds", file=sys.stderr, flush=True)
                for index in range(rounds):
                    merge_into(total, run_round(check, index, args.scale,
                                                seeds.randrange(2**31), root))
    print(f"done in {time.monotonic() - started:.0f}s (seed {seed})", file=sys.stderr)
    print(table(total))
    return 0 if all(t.clean() for t in total.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
