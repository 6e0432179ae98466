"""API keys stay secret: a distinctive Dwellir and Hydromancer key (odd characters, so
URL encoding changes them) never appears in any byte of stdout, stderr (``--json``
summaries, ``--json-log`` events and error lines included), any file of the lake
(parts, ledger reasons, ``status.json``), the CSV folder, the pacing folder, or the
command line of any process of the run — under faults, and with a wrong key (the
refusal names the variable, never its value). Every command that takes a key is
tried: ``candles`` from Dwellir and from Hydromancer, and ``stream``, whose REST
repairs of 1s bars go to Hydromancer.

What is searched for is each key's distinctive middle, which URL encoding leaves as
it is: found raw, percent-encoded or inside a longer string, it counts.
"""

from __future__ import annotations

import dataclasses
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hyperlake.emulator.config import FaultRule
from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.paths import LakePaths, SeriesKey
from tests.pipelines.test_candles_support import group_members, iso, ms, seed_universe, start_cli
from tests.reliability.kills import candle_stage
from tests.reliability.support import (
    EXIT_GAPS,
    EXIT_OK,
    EXIT_OTHER,
    StartEmulator,
    Tallies,
    Tally,
    env_for,
    fast_config,
    hyperlake,
    key_occurrences,
)

#: (key, its distinctive middle): right and wrong, for each source that takes one.
DWELLIR = ("dw-Q7z+K3yZ9SECRETdw=%41~x", "K3yZ9SECRETdw")
HYDROMANCER = ("hm-W4x+K3yW8SECREThm=%42~y", "K3yW8SECREThm")
WRONG_DWELLIR = ("dw-R5v+K3yWRONGdw=%43~z", "K3yWRONGdw")
WRONG_HYDROMANCER = ("hm-T6u+K3yWRONGhm=%44~w", "K3yWRONGhm")
CORES = tuple(core for _, core in (DWELLIR, HYDROMANCER, WRONG_DWELLIR, WRONG_HYDROMANCER))
STREAM_T0 = ms("2026-03-30T00:00:00Z")
STREAM_RATE = 60.0


@dataclass(frozen=True)
class Case:
    command: str  # "dwellir", "hydromancer" or "stream"
    wrong: bool
    faults: tuple[FaultRule, ...]

    @property
    def name(self) -> str:
        how = "a wrong key" if self.wrong else ", ".join(f"{f.kind} {f.rate:.0%}"
                                                          for f in self.faults) or "no fault"
        return f"{self.command} with {how}"


CASES = (
    Case("dwellir", False, (FaultRule("dwellir", "500", 0.3), FaultRule("dwellir",
                                                                        "malformed", 0.1))),
    Case("dwellir", True, ()),
    Case("hydromancer", False, (FaultRule("hydromancer", "truncated", 0.3),)),
    Case("hydromancer", True, ()),
    Case("stream", False, (FaultRule("hydromancer", "500", 0.3),
                           FaultRule("ws", "ws_disconnect", 0.3))),
    Case("stream", True, ()),
)


def emulator_for(start: StartEmulator, case: Case) -> Emulator:
    keys = {"dwellir_keys": {DWELLIR[0]: "scale"}, "dwellir_rate_overrides": {DWELLIR[0]: 10**6},
            "hydromancer_keys": (HYDROMANCER[0],)}
    if case.command != "stream":
        return start(fast_config(*case.faults, **keys))
    config = dataclasses.replace(frozen_config(STREAM_T0, info_weight_per_minute=10**7,
                                               hydromancer_weight_per_minute=10**7, **keys),
                                 faults=case.faults)
    emu = start(config)
    seed_universe(emu)
    return emu


def watch(process: subprocess.Popen[str], seconds: float | None
          ) -> tuple[int, str, str, set[bytes]]:
    """Wait for ``process`` (or stop it with SIGTERM after ``seconds``), collecting the
    command lines of its process group meanwhile."""
    lines: set[bytes] = set()
    deadline = None if seconds is None else time.monotonic() + seconds
    while process.poll() is None:
        lines.update(group_members(process.pid).values())
        if deadline is not None and time.monotonic() > deadline:
            process.send_signal(signal.SIGTERM)
            deadline = None
        time.sleep(0.05)
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout, stderr, lines


def run_case(start: StartEmulator, folder: Path, case: Case, rng: random.Random,
             tally: Tally) -> None:
    emu = emulator_for(start, case)
    lake, csv = folder / "lake", folder / "csv"
    csv.mkdir(parents=True)
    dwellir = WRONG_DWELLIR if case.wrong else DWELLIR
    hydromancer = WRONG_HYDROMANCER if case.wrong else HYDROMANCER
    env = env_for(emu, HYPERLAKE_DWELLIR_KEY=dwellir[0], HYPERLAKE_HYDROMANCER_KEY=hydromancer[0],
                  HYPERLAKE_MAX_ATTEMPTS="3")
    if case.command == "stream":
        anchor = time.time()
        emu.set_clock(STREAM_T0, STREAM_RATE)
        env |= {"HYPERLAKE_NOW": iso(STREAM_T0), "HYPERLAKE_CLOCK_RATE": str(STREAM_RATE),
                "HYPERLAKE_CLOCK_ANCHOR": repr(anchor), "HYPERLAKE_WS_URL": emu.urls.ws,
                "HYPERLAKE_SETTLE": "5", "HYPERLAKE_WS_STALE": "2"}
        argv = hyperlake("stream", "--coins", "BTC", "--intervals", "1s,1m", "--grace", "2s",
                         "--json-log", "--csv-dir", str(csv), "--compact-every", "30s",
                         "--lake", str(lake))
        # stopped, then started a minute later: the minute between is repaired from REST
        outputs: list[str] = []
        lines: set[bytes] = set()
        for seconds in (1.5, 3.0):
            code, out, err, seen = watch(start_cli(argv, env), seconds)
            tally.expect(code == EXIT_OK, f"{case.name}: the stream exited {code}")
            outputs += [out, err]
            lines |= seen
            time.sleep(1.0)
        stdout, stderr = "".join(outputs[::2]), "".join(outputs[1::2])
        check_stream(tally, case, lake, stderr)
    else:
        stage = candle_stage(case.command, "BTC", "1s", "2026-03-30T04:00:00Z",
                             "2026-03-30T04:05:00Z" if case.command == "dwellir"
                             else "2026-03-30T08:00:00Z", "--rate", "8000")
        argv = stage.argv(lake)
        if rng.random() < 0.5:
            argv.remove("--json")
        code, stdout, stderr, lines = watch(start_cli(argv, env), None)
        check_candles(tally, case, code, stderr)
    tally.scan(stdout, stderr)
    tally.inputs += 1
    for core in CORES:
        hits = key_occurrences(core, [stdout, stderr, *lines],
                               [lake, csv, Path(env["HYPERLAKE_PACING_DIR"])])
        tally.key_bytes += len(hits)
        tally.expect(not hits, f"{case.name}: the key ({core}) in {sorted(set(hits))[:5]}")


def check_candles(tally: Tally, case: Case, code: int, stderr: str) -> None:
    variable = f"HYPERLAKE_{case.command.upper()}_KEY"  # named by Dwellir's refusal
    if case.wrong:
        tally.expect(code == EXIT_OTHER and "401" in stderr
                     and (variable in stderr or "API key" in stderr),
                     f"{case.name}: exit {code}, {stderr[-300:]}")
    else:
        tally.expect(code in (EXIT_OK, EXIT_GAPS), f"{case.name}: exit {code}, {stderr[-300:]}")


def check_stream(tally: Tally, case: Case, lake: Path, stderr: str) -> None:
    series = Series(LakePaths(lake), SeriesKey("candles", "stream", "BTC", "1s"))
    reasons = {gap.info.get("reason", "") for gap in series.gaps()}
    repaired = "repaired" in stderr
    if case.wrong:
        tally.expect(any("401" in r for r in reasons),
                     f"{case.name}: no ledger entry saying the key was refused: {reasons}")
    else:
        tally.expect(repaired or bool(reasons), f"{case.name}: nothing was repaired")


def keys_round(start: StartEmulator, folder: Path, rng: random.Random,
               cases: tuple[Case, ...] = CASES) -> Tallies:
    tally = Tally(runs=1)
    for index, case in enumerate(cases):
        run_case(start, folder / f"case-{index}", case, rng, tally)
    return {"secrets": tally}
