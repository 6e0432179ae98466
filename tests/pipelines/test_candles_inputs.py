"""Bad input to ``hyperlake candles``: exit status 2, one line on stderr that names the
field, and nothing done — no request to any source, no file in the lake."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hyperlake.emulator.server import Emulator
from tests.conftest import NOW_MS
from tests.pipelines.test_candles_support import (
    CLI,
    all_files,
    cli_env,
    iso,
    request_counts,
    run_cli,
    warm_universe,
)

GOOD = {"--source": "dwellir", "--market": "BTC", "--interval": "1m",
        "--start": "2026-03-30T00:00:00Z", "--end": "2026-03-30T01:00:00Z"}


@dataclass(frozen=True)
class BadInput:
    name: str
    args: dict[str, str]  # replaces or adds to GOOD
    says: tuple[str, ...]  # all of these appear in the error line
    env: dict[str, str | None] = field(default_factory=dict)
    needs_universe: bool = False  # the check needs the market list (cached per user)

    def argv(self, lake: Path) -> list[str]:
        flags = {**GOOD, **self.args}
        return [*CLI, *(x for pair in flags.items() for x in pair), "--lake", str(lake)]


CASES = [
    BadInput("unknown-market", {"--market": "BTCC", "--source": "hydromancer"},
             ("market", "'BTCC'", "did you mean", "BTC"), needs_universe=True),
    BadInput("dwellir-1h", {"--interval": "1h"}, ("--interval", "'1h'", "1s, 1m, 5m")),
    BadInput("hyperliquid-1s", {"--source": "hyperliquid", "--interval": "1s"},
             ("--interval", "'1s'", "hyperliquid")),
    BadInput("start-equals-end", {"--end": "2026-03-30T00:00:00Z"}, ("--start", "--end")),
    BadInput("misaligned-start", {"--start": "2026-03-30T00:00:30Z"},
             ("--start", "2026-03-30T00:00:30Z", "not aligned to 1m",
              "2026-03-30T00:00:00Z", "2026-03-30T00:01:00Z")),
    BadInput("end-in-future", {"--source": "hydromancer", "--end": "2026-03-31T00:01:00Z"},
             ("--end", "future", "2026-03-31T00:00:00Z")),
    BadInput("naive-start", {"--start": "2026-03-30T00:00:00"}, ("--start", "timezone")),
    BadInput("dwellir-before-floor",
             {"--start": "2025-07-27T07:00:00Z", "--end": "2025-07-27T09:00:00Z"},
             ("--start", "2025-07-27T08:00:00Z")),
    # The client's now is 23:59:30: the 1m bucket [23:59, 00:00) is still open.
    BadInput("dwellir-open-bucket",
             {"--start": "2026-03-30T23:00:00Z", "--end": "2026-03-31T00:00:00Z"},
             ("--end",), env={"HYPERLAKE_NOW": "2026-03-30T23:59:30Z"}),
    # The open 1m bucket and the 4999 before it: back to 2026-03-27T12:41.
    BadInput("hyperliquid-horizon",
             {"--source": "hyperliquid", "--start": "2026-03-27T12:40:00Z"},
             ("--start", "5000", iso(NOW_MS - 4999 * 60_000))),
    BadInput("missing-dwellir-key", {}, ("HYPERLAKE_DWELLIR_KEY",),
             env={"HYPERLAKE_DWELLIR_KEY": None}),
    BadInput("rate-and-plan", {"--rate": "10", "--plan": "free"}, ("--rate", "--plan")),
    BadInput("workers-zero", {"--workers": "0"}, ("--workers",)),
]


@dataclass(frozen=True)
class Outcome:
    result: subprocess.CompletedProcess[str]
    requests: dict[str, int]
    files_before: list[Path]
    files_after: list[Path]
    lake: Path


Runner = Callable[[BadInput], Outcome]


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    return {}


@pytest.fixture
def outcome_of(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory,
               outcomes: dict[str, Outcome]) -> Runner:
    """Run a bad input once (both tests below look at the same run)."""

    def run(case: BadInput) -> Outcome:
        if case.name not in outcomes:
            lake = tmp_path_factory.mktemp(case.name) / "lake"
            if case.needs_universe:
                warm_universe(emulator)
            before = all_files(lake)
            emulator.reset_stats()
            result = run_cli(case.argv(lake), cli_env(emulator, **case.env))
            outcomes[case.name] = Outcome(result, request_counts(emulator.stats()), before,
                                          all_files(lake), lake)
        return outcomes[case.name]

    return run


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_is_refused_before_any_work(outcome_of: Runner, case: BadInput) -> None:
    got = outcome_of(case)
    assert got.result.returncode == 2, got.result.stderr
    assert got.result.stdout == ""
    last = got.result.stderr.strip().splitlines()[-1]
    assert last.startswith("hyperlake candles: error: ")
    for text in case.says:
        assert text in last, f"{text!r} not in {last!r}"
    assert got.requests == {}, "a request was made"
    assert got.files_after == got.files_before, "a file was written"
    assert not (got.lake / "_checkpoints").exists()
    assert not got.lake.exists(), "the lake folder was created"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_message_is_one_line(outcome_of: Runner, case: BadInput) -> None:
    got = outcome_of(case)
    assert got.result.returncode == 2
    assert len(got.result.stderr.strip().splitlines()) == 1, got.result.stderr


def test_unknown_market_on_a_cold_lake_suggests_and_fetches_no_candle(
        emulator: Emulator, tmp_path: Path) -> None:
    """Without a universe snapshot the market list must be fetched (``meta``); still no
    candle request and no checkpoint."""
    lake = tmp_path / "lake"
    emulator.reset_stats()
    result = run_cli(BadInput("x", {"--market": "btcc"}, ()).argv(lake),
                     cli_env(emulator, HYPERLAKE_CACHE_DIR=str(tmp_path / "cold-cache")))
    assert result.returncode == 2
    assert "did you mean BTC" in result.stderr
    assert set(request_counts(emulator.stats())) <= {"info_requests"}
    assert not lake.exists()
