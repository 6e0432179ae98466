"""Property-based fuzzing of the command line: hypothesis draws argument vectors and
environment values for ``candles``, ``funding``, ``stream``, ``sql``, ``export``,
``verify``, ``compact`` and ``plot`` — valid values mixed with hostile ones (NaN,
infinities, huge numbers, impossible dates, empty strings, control and non-ASCII
characters, unknown names, bad URLs, paths that cannot be lakes) — and for every one:

- no traceback, whatever the input; the exit status is one the help documents;
- a rejected input (exit 2) ends with an error line, creates or changes no file (in
  the lake, or anywhere else the run could write) and sends no request to the emulator;
- a refused one (exit 3: another process holds the lake's locks) touches nothing either.

The world a run sees: one lake (``data``, the default lake of the folder the runs start
in) whose writer and stream locks another process holds, so a valid writing command
ends at the lock instead of running for real; its market lists cached; HOME inside the
world. Values that name paths (``--lake``, ``--output``, ``--csv-dir``, the *_DIR and
CA variables) are drawn from a curated list inside the world only, and the last
``--lake`` of a writing command is always one of them: no draw can make a run write
outside the world, or start a real extraction.

Runs are in-process (``hyperlake.cli.main``, stdout a strict UTF-8 text stream as a
terminal's is); the battery also sends a share of them through real processes.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from hyperlake.emulator.server import Emulator
from tests.pipelines.test_candles_support import seed_universe
from tests.query.test_catalog_support import odd_names_lake
from tests.reliability.support import (
    TRACEBACK,
    StartEmulator,
    Tally,
    call_main,
    fast_config,
    tree,
    tree_changes,
)
from tests.reliability.writers import HOLD_LOCKS

COMMANDS = ("candles", "funding", "stream", "sql", "export", "verify", "compact", "plot")
WRITERS = ("candles", "funding", "stream", "compact")
#: Exit statuses the commands document.
DOCUMENTED = {0, 1, 2, 3, 4}

HOSTILE = (
    "", " ", "-", "--", "nan", "NaN", "inf", "-inf", "1e-300", "1e308", "-1", "0", "0.5",
    "1", "99999999999999999999999", "\uff11\uff12", "\u0663", "0x10", "1_000", "BTC,", ",",
    ",,", "%00",
    "\udcff", "a" * 300, "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-03-30T00:00:00+14:00",
    "2026-03-30", "1774915200000", "2026-03-30T00:00:00.5Z", "now", "é", "🙂", "\n", "\t",
    "'; DROP TABLE candles; --", "x" * 5000, "\u202e", "NUL", "\\", "\"", "'",
)
INSTANTS = ("2026-03-30T00:00:00Z", "2026-03-30T01:00:00Z", "2026-03-29T00:00:00Z",
            "2023-01-01T00:00:00Z", "2026-03-31T00:00:00Z", "2030-01-01T00:00:00Z",
            "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")
MARKETS = ("BTC", "btc", "kPEPE", "KPEPE", "HYPE/USDC", "@107", "xyz:XYZ100", "ETH", "NOPE",
           "  ", "BTC,ETH")
INTERVALS = ("1s", "1m", "5m", "1h", "1d", "1M", "1w", "7d", "2m")
#: Tokens thrown in anywhere: flags, options without values, the odd positional.
JUNK = ("--json", "--bogus", "-x", "--", "--workers", "--rate", "--start", "extra",
        "--help", "-h", "--all", "--funding", "--market", "=", "--json=1", "--version")
#: Free text for values that do not name paths (never NUL: argv and environ cannot hold it).
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
               max_size=12)


def value(*good: str) -> st.SearchStrategy[str]:
    """A good value, a hostile one or free text."""
    fine = st.sampled_from(good)
    return st.one_of(fine, fine, fine, fine, fine, fine, st.sampled_from(HOSTILE), TEXT)


Option = tuple[st.SearchStrategy[list[str]], st.SearchStrategy[list[str]]]


def option(name: str, good: st.SearchStrategy[str] | tuple[str, ...]) -> Option:
    """(a good ``[name, value]``, a bad one: hostile value, free text, no value, absent)."""
    values = st.sampled_from(good) if isinstance(good, tuple) else good
    bad = st.one_of(st.sampled_from(HOSTILE), TEXT).map(lambda v: [name, v])
    return values.map(lambda v: [name, v]), st.one_of(bad, bad, st.just([]), st.just([name]))


def flag(name: str) -> Option:
    return st.sampled_from([[], [name]]), st.sampled_from([[name, name], [name, "yes"]])


def span_option() -> Option:
    """``--start A --end B`` with A before B; spoiled: either one hostile or left out,
    or the two swapped."""
    pairs = st.lists(st.sampled_from(INSTANTS), min_size=2, max_size=2, unique=True).map(
        sorted)
    good = pairs.map(lambda p: ["--start", p[0], "--end", p[1]])
    hostile = st.one_of(st.sampled_from(HOSTILE), TEXT)
    bad = st.one_of(
        st.tuples(hostile, st.sampled_from(INSTANTS)).map(lambda p: ["--start", p[0],
                                                                      "--end", p[1]]),
        st.tuples(st.sampled_from(INSTANTS), hostile).map(lambda p: ["--start", p[0],
                                                                      "--end", p[1]]),
        pairs.map(lambda p: ["--start", p[1], "--end", p[0]]),
        st.sampled_from(INSTANTS).map(lambda v: ["--start", v]),
        st.sampled_from(INSTANTS).map(lambda v: ["--end", v]))
    return good, bad


def required(name: str) -> Option:
    """A flag that stands for a required choice (``--all``): present unless spoiled."""
    return st.just([name]), st.sampled_from([[], [name, "yes"]])


def either(*options: Option) -> Option:
    """One of mutually exclusive options."""
    return st.one_of(*(good for good, _ in options)), st.one_of(*(bad for _, bad in options))


def positional(*good: str) -> Option:
    return st.sampled_from([[g] for g in good]), st.one_of(
        st.sampled_from(HOSTILE).map(lambda v: [v]), st.just([]))


@dataclass(frozen=True)
class World:
    """Where fuzzed runs happen: ``root`` holds everything they could write."""

    root: Path
    lake: Path  # root/data: the default lake, its locks held by another process
    emu: Emulator

    def paths(self) -> dict[str, Path]:
        return {name: self.root / name for name in
                ("file", "home", "out", "csv", "pacing", "null", "loop", "missing")}

    def lakes(self) -> st.SearchStrategy[str]:
        p = self.paths()
        good = [str(self.lake), "data", "./data/", str(self.lake) + "//", "", "~/../data"]
        bad = [str(p["file"]), str(p["file"] / "lake"), str(p["loop"]),
               str(self.root / ("x" * 300)), "/proc/self"]
        return st.sampled_from([*good, *good, *good, *bad])

    def outputs(self) -> st.SearchStrategy[str]:
        p = self.paths()
        return st.sampled_from(["-", str(p["out"] / "result.csv"), "result.out", str(p["file"]),
                                str(p["out"]), str(p["missing"] / "x.csv"), "",
                                str(p["file"] / "x.csv"), str(p["null"]), str(p["loop"])])

    def folders(self) -> st.SearchStrategy[str]:
        p = self.paths()
        return st.sampled_from([str(p["out"]), str(p["csv"]), str(p["file"]), str(p["missing"]),
                                "", "."])


def command_lines(world: World) -> st.SearchStrategy[list[str]]:
    """An argument vector of one of the fuzzed commands: every option drawn good, then
    up to three of them spoiled (a hostile value, free text, no value, left out), in any
    order, with some junk thrown in."""
    span = [span_option()]
    market = option("--market", MARKETS)
    interval = option("--interval", INTERVALS)
    per_command: dict[str, list[Option]] = {
        "candles": [option("--source", ("dwellir", "hydromancer", "hyperliquid")),
                    market, option("--interval", ("1m", "5m", "1m", "1s", "1h")), *span,
                    option("--workers", ("1", "2", "8")),
                    option("--rate", ("1", "100", "8000", "5000.5")),
                    option("--plan", ("free", "developer", "growth", "scale")),
                    flag("--json")],
        "funding": [either(option("--coins", MARKETS), required("--all")),
                    flag("--include-delisted"), *span,
                    option("--hours-per-window", ("1", "24", "336", "100000")),
                    option("--on-500", ("empty", "split", "skip-coin")),
                    option("--threads", ("1", "8", "64")), flag("--json")],
        "stream": [either(option("--coins", MARKETS), required("--all")), flag("--include-spot"),
                   option("--intervals", ("1m", "1s,1m", "1h")),
                   option("--grace", ("2s", "0s", "5m", "90s")),
                   option("--csv-dir", world.folders()),
                   option("--compact-every", ("5m", "0", "1s")),
                   flag("--keep-trades"), flag("--json-log")],
        "sql": [(statements(world).map(lambda q: [q]), st.just([])),
                option("--format", ("table", "csv", "json", "parquet")),
                option("--output", world.outputs())],
        "export": [positional("csv"), market, interval, *span,
                   option("--output", world.outputs())],
        "verify": [market, interval, option("--dataset", ("candles", "funding")),
                   flag("--json")],
        "compact": [option("--dataset", ("candles", "funding", "trades")),
                    option("--prefer", ("dwellir,hydromancer", "hyperliquid", "stream")),
                    flag("--json")],
        "plot funding": [either(option("--market", ("BTC", "kPEPE", "BTC,kPEPE", "NOPE")),
                                required("--all")), *span, option("--ma", ("24h", "none", "1w")),
                         option("--workers", ("1",)), option("--output", world.folders()),
                         option("--format", ("png", "svg"))],
        "plot heatmap": [option("--market", ("BTC", "kPEPE", "BTC,kPEPE", "NOPE")), *span,
                         option("--output", world.folders()),
                         option("--format", ("png", "svg"))],
        "plot candles": [either(option("--market", ("BTC", "kPEPE", "NOPE")), required("--all")),
                         option("--interval", ("1m", "1h", "1M")), *span,
                         option("--workers", ("1",)), option("--output", world.folders()),
                         option("--format", ("png", "svg")), flag("--funding")],
    }

    @st.composite
    def draw_argv(draw: st.DrawFn) -> list[str]:
        name = draw(st.sampled_from(sorted(per_command)))
        options = [*per_command[name], option("--lake", world.lakes())]
        parts = [draw(good) for good, _ in options]
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):
            index = draw(st.integers(0, len(options) - 1))
            parts[index] = draw(options[index][1])
        if draw(st.integers(0, 4)) == 0:
            parts.append(draw(st.lists(st.sampled_from(JUNK), min_size=1, max_size=2)))
        ordered = draw(st.permutations(parts[1:])) if name == "export" \
            else draw(st.permutations(parts))
        head = parts[:1] if name == "export" else []
        if name.startswith("plot ") and draw(st.integers(0, 9)) == 0:
            head = [[draw(st.sampled_from(("pie", "", "--all")))]]  # no such chart
        argv = [*name.split(), *(token for part in [*head, *ordered] for token in part)]
        if name in WRITERS:  # the last --lake wins: never a lake outside the world
            argv += ["--lake", draw(world.lakes())]
        return argv

    return draw_argv()


def statements(world: World) -> st.SearchStrategy[str]:
    target = str(world.root / "out" / "copied.csv")
    return st.one_of(
        st.sampled_from([
            "SELECT market, count(*) FROM candles GROUP BY ALL ORDER BY ALL",
            "SELECT * FROM funding", "SELECT 1/0", "SELECT 'é', NULL, nan",
            "SELECT * FROM candles_with_funding LIMIT 3", "SHOW TABLES", "DESCRIBE candles",
            f"COPY (SELECT 1) TO '{target}'", f"COPY candles TO '{world.lake}/candles/x.csv'",
            "DROP VIEW candles", "SET threads = 1", f"ATTACH '{target}.db' AS x",
            "INSTALL httpfs", "SELECT * FROM read_csv('/nonexistent')", "", ";", "--",
            "SELECT", "FROM", "EXPLAIN ANALYZE SELECT 1", "PRAGMA version",
            "SELECT epoch_ms(t) FROM candles WHERE t > now()",
        ]),
        st.sampled_from(HOSTILE), TEXT)


def environments(world: World) -> st.SearchStrategy[dict[str, str]]:
    emu, p = world.emu, world.paths()
    numbers = value("1", "0.01", "300", "1200", "1000000")
    choices: dict[str, st.SearchStrategy[str]] = {
        "HYPERLAKE_NOW": value(*INSTANTS),
        "HYPERLAKE_CLOCK_RATE": numbers, "HYPERLAKE_CLOCK_ANCHOR": numbers,
        "HYPERLAKE_BACKOFF_BASE": numbers, "HYPERLAKE_MAX_ATTEMPTS": numbers,
        "HYPERLAKE_SETTLE": numbers, "HYPERLAKE_HYPERLIQUID_WEIGHT": numbers,
        "HYPERLAKE_HYDROMANCER_WEIGHT": numbers, "HYPERLAKE_WS_STALE": numbers,
        "HYPERLAKE_HYPERLIQUID_URL": st.sampled_from(
            [emu.urls.hyperliquid, "not a url", "http://[::1", "ftp://x", "", "http://",
             "http://127.0.0.1:99999", "https://"]),
        "HYPERLAKE_DWELLIR_URL": st.sampled_from(
            [emu.urls.dwellir, "not a url", "http://[::1", "", "file:///etc/passwd"]),
        "HYPERLAKE_HYDROMANCER_URL": st.sampled_from([emu.urls.hydromancer, "ftp://x", " "]),
        "HYPERLAKE_WS_URL": st.sampled_from([emu.urls.ws, "http://x", "ws://[::1", ""]),
        "HYPERLAKE_DWELLIR_KEY": value("dw-test-key"),
        "HYPERLAKE_HYDROMANCER_KEY": value("hm-test-key"),
        "HYPERLAKE_CA_BUNDLE": st.sampled_from([str(p["file"]), str(p["missing"]),
                                                str(p["out"]), ""]),
        "HYPERLAKE_PACING_DIR": st.sampled_from([str(p["pacing"]), str(p["file"]), ""]),
        "HYPERLAKE_LAKE": world.lakes(),
    }
    return st.lists(st.sampled_from(sorted(choices)), unique=True, max_size=2).flatmap(
        lambda names: st.fixed_dictionaries({name: choices[name] for name in names}))


# -- the world ----------------------------------------------------------------------------


@contextlib.contextmanager
def fuzz_world(start: StartEmulator, root: Path) -> Iterator[World]:
    """The folder, the lake, its locks held by another process, the emulator."""
    emu = start(fast_config(), gateway=False)
    seed_universe(emu)
    lake = root / "data"
    odd_names_lake(lake)
    world = World(root, lake, emu)
    p = world.paths()
    p["file"].write_text("a file\n")
    for folder in ("home", "out", "csv", "pacing"):
        p[folder].mkdir()
    os.symlink(p["loop"], p["loop"])
    if os.geteuid() == 0:
        os.mknod(p["null"], stat.S_IFCHR | 0o666, os.makedev(1, 3))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCKS, str(lake)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield world
    finally:
        if holder.stdin is not None:
            holder.stdin.close()
        holder.wait(timeout=30)


def base_env(world: World) -> dict[str, str]:
    """What every fuzzed run starts from (the draws override some of it)."""
    return {
        "HOME": str(world.root / "home"),
        "HYPERLAKE_HYPERLIQUID_URL": world.emu.urls.hyperliquid,
        "HYPERLAKE_HYDROMANCER_URL": world.emu.urls.hydromancer,
        "HYPERLAKE_DWELLIR_URL": world.emu.urls.dwellir,
        "HYPERLAKE_WS_URL": world.emu.urls.ws,
        "HYPERLAKE_DWELLIR_KEY": "dw-test-key", "HYPERLAKE_HYDROMANCER_KEY": "hm-test-key",
        "HYPERLAKE_NOW": "2026-03-31T00:00:00Z", "HYPERLAKE_BACKOFF_BASE": "0.001",
        "HYPERLAKE_PACING_DIR": str(world.root / "pacing"),
        "HYPERLAKE_LAKE": str(world.lake),
    }


# -- one input ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str
    escaped: str | None = None  # an exception that left main(): a traceback


def run_in_process(world: World, argv: list[str], env: dict[str, str]) -> Outcome:
    """``main(argv)`` with ``env`` set, in ``world.root``."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("HYPERLAKE_")]:
            if name != "HYPERLAKE_CACHE_DIR":
                mp.delenv(name)
        for name, text in {**base_env(world), **env}.items():
            mp.setenv(name, text)
        mp.chdir(world.root)
        try:
            return Outcome(*call_main(argv))
        except BaseException as exc:  # noqa: BLE001 - what the user would see as a traceback
            return Outcome(1, "", "", f"{type(exc).__name__}: {exc}")


def run_as_process(world: World, argv: list[str], env: dict[str, str]) -> Outcome:
    full = {k: v for k, v in os.environ.items() if not k.startswith("HYPERLAKE_")
            or k == "HYPERLAKE_CACHE_DIR"}
    done = subprocess.run([sys.executable, "-m", "hyperlake.cli", *argv],
                          env={**full, **base_env(world), **env}, cwd=world.root,
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
                          check=False)
    return Outcome(done.returncode, done.stdout.decode(errors="replace"),
                   done.stderr.decode(errors="replace"))


def requests_seen(emu: Emulator) -> int:
    stats = emu.stats()
    return sum(v for k, v in stats.items() if k.endswith("_requests"))


def check_one(world: World, argv: list[str], env: dict[str, str], tally: Tally,
              as_process: bool = False) -> Outcome:
    """Run one drawn input and record what it broke."""
    skip = ("pacing", "home")  # the user's caches (matplotlib's fonts) are no lake
    before, sent = tree(world.root, skip=skip), requests_seen(world.emu)
    outcome = (run_as_process if as_process else run_in_process)(world, argv, env)
    tally.inputs += 1
    shown = f"{argv!r} env {env!r}"[:400]
    if outcome.escaped is not None:
        tally.tracebacks += 1
        tally.problems.append(f"{shown}: {outcome.escaped}"[:600])
    elif TRACEBACK in outcome.stderr or TRACEBACK in outcome.stdout:
        tally.tracebacks += 1
        tally.problems.append(f"{shown}: {outcome.stderr[-400:]}")
    tally.expect(outcome.code in DOCUMENTED, f"{shown}: exit {outcome.code}")
    tally.note(f"exit {outcome.code}")
    if outcome.code in (2, 3):
        changes = tree_changes(before, tree(world.root, skip=skip))
        tally.expect(not changes, f"{shown}: exit {outcome.code} but {changes[:3]}")
        tally.expect(requests_seen(world.emu) == sent,
                     f"{shown}: exit {outcome.code} after requests to the emulator")
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        tally.expect(bool(lines) and ": error: " in lines[-1],
                     f"{shown}: exit {outcome.code} without an error line: "
                     f"{outcome.stderr[-300:]}")
    return outcome


def fuzz(world: World, tally: Tally, examples: int, draw_seed: int,
         process_share: float = 0.0) -> None:
    """``examples`` drawn inputs (a share of them through real processes)."""
    counter = iter(range(10**9))

    @seed(draw_seed)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(argv=command_lines(world), env=environments(world))
    def one(argv: list[str], env: dict[str, str]) -> None:
        as_process = process_share > 0 and next(counter) % round(1 / process_share) == 0
        check_one(world, argv, env, tally, as_process)

    one()
