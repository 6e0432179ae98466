"""Bad input: one line on stderr, exit 2, no request, no file; a second run on a busy
lake: exit 3."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hyperlake.emulator.server import Emulator, frozen_config
from tests.conftest import NOW_MS
from tests.pipelines.test_funding_support import (
    CliRun,
    all_files,
    client_budget,
    fast_emulator,
    funding_env,
    info_requests,
    kill_group,
    run_funding,
    start_cli,
    wait_until_extracting,
    warm_universe,
)

DAY = ["--start", "2026-03-30T00:00:00Z", "--end", "2026-03-31T00:00:00Z"]

#: name -> (arguments, what the one-line message must say). None of them needs the
#: exchange's list of markets to be refused.
OFFLINE_CASES: dict[str, tuple[list[str], list[str]]] = {
    "start-equals-end": (["--coins", "BTC", "--start", "2026-03-30T00:00:00Z",
                          "--end", "2026-03-30T00:00:00Z"], ["--start must be before --end"]),
    "start-after-end": (["--coins", "BTC", "--start", "2026-03-30T01:00:00Z",
                         "--end", "2026-03-30T00:00:00Z"], ["--start must be before --end"]),
    "start-off-the-hour": (["--coins", "BTC", "--start", "2026-03-30T00:30:00Z",
                            "--end", "2026-03-31T00:00:00Z"],
                           ["--start 2026-03-30T00:30:00Z is not on the hour",
                            "2026-03-30T00:00:00Z", "2026-03-30T01:00:00Z"]),
    "end-off-the-hour": (["--coins", "BTC", "--start", "2026-03-30T00:00:00Z",
                          "--end", "2026-03-30T23:59:59.500Z"],
                         ["--end 2026-03-30T23:59:59.500Z is not on the hour"]),
    "end-in-the-future": (["--coins", "BTC", "--start", "2026-03-30T00:00:00Z",
                           "--end", "2026-03-31T01:00:00Z"],
                          ["in the future", "now is 2026-03-31T00:00:00Z"]),
    "naive-start": (["--coins", "BTC", "--start", "2026-03-30T00:00:00",
                     "--end", "2026-03-31T00:00:00Z"], ["--start", "has no timezone"]),
    "naive-end": (["--coins", "BTC", "--start", "2026-03-30T00:00:00Z",
                   "--end", "2026-03-31 00:00"], ["--end", "has no timezone"]),
    "not-a-time": (["--coins", "BTC", "--start", "yesterday", "--end",
                    "2026-03-31T00:00:00Z"], ["--start", "not an ISO-8601 time"]),
    "zero-hours-per-window": (["--coins", "BTC", *DAY, "--hours-per-window", "0"],
                              ["--hours-per-window must be at least 1"]),
    "negative-hours-per-window": (["--coins", "BTC", *DAY, "--hours-per-window", "-24"],
                                  ["--hours-per-window must be at least 1"]),
    "include-delisted-without-all": (["--coins", "BTC", *DAY, "--include-delisted"],
                                     ["--include-delisted goes with --all"]),
    "empty-coins": (["--coins", "", *DAY], ["--coins: give at least one coin"]),
    "only-commas": (["--coins", " , ,", *DAY], ["--coins: give at least one coin"]),
    "zero-threads": (["--coins", "BTC", *DAY, "--threads", "0"],
                     ["--threads must be 1 to 64"]),
}
#: Refused once the names are checked against the exchange's markets.
MARKET_CASES: dict[str, tuple[list[str], list[str]]] = {
    "unknown-coin": (["--coins", "BTC,BTX", *DAY],
                     ["unknown market 'BTX'", "did you mean", "BTC"]),
    "unknown-coin-any-case": (["--coins", "kpepee", *DAY],
                              ["unknown market 'kpepee'", "did you mean", "kPEPE"]),
    "spot-coin": (["--coins", "ETH,HYPE/USDC", *DAY], ["spot market", "no funding"]),
    "spot-coin-by-index": (["--coins", "PURR/USDC", *DAY], ["spot market", "no funding"]),
}


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with fast_emulator() as emulator:
        yield emulator


def assert_refused(run: CliRun, says: list[str], code: int = 2) -> None:
    assert run.code == code, run
    assert run.stdout == "", run
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hyperlake funding: error: "), run.stderr
    for fragment in says:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("case", sorted(OFFLINE_CASES))
def test_bad_input_is_refused_before_anything_happens(emu: Emulator, tmp_path: Path,
                                                      case: str) -> None:
    args, says = OFFLINE_CASES[case]
    lake = tmp_path / "lake"
    before = info_requests(emu)
    run = run_funding([*args, "--lake", str(lake), "--json"], funding_env(emu))
    assert_refused(run, says)
    assert info_requests(emu) == before, "a request was made"
    assert not lake.exists(), all_files(lake)


@pytest.mark.parametrize("case", sorted(OFFLINE_CASES) + sorted(MARKET_CASES))
def test_bad_input_leaves_an_existing_lake_alone(emu: Emulator, tmp_path: Path,
                                                 case: str) -> None:
    args, says = {**OFFLINE_CASES, **MARKET_CASES}[case]
    warm_universe(emu)  # the market list is known: nothing to ask
    files = {p: p.read_bytes() for p in all_files(tmp_path)}
    before = info_requests(emu)
    run = run_funding([*args, "--lake", str(tmp_path), "--json"], funding_env(emu))
    assert_refused(run, says)
    assert info_requests(emu) == before, "a request was made"
    assert {p: p.read_bytes() for p in all_files(tmp_path)} == files


@pytest.mark.parametrize("case", sorted(MARKET_CASES))
def test_a_bad_coin_on_a_new_lake_costs_only_the_market_list(emu: Emulator, tmp_path: Path,
                                                             case: str) -> None:
    args, says = MARKET_CASES[case]
    before = info_requests(emu)
    env = funding_env(emu, HYPERLAKE_CACHE_DIR=str(tmp_path / "cold-cache"))
    run = run_funding([*args, "--lake", str(tmp_path / "lake"), "--json"], env)
    assert_refused(run, says)
    # meta, perpDexs, meta of the xyz dex, spotMeta: no fundingHistory, no checkpoint,
    # and not a byte in the lake (market lists are cached per user, outside it)
    assert info_requests(emu) - before == 4
    assert not (tmp_path / "lake").exists()
    assert [p.name for p in (tmp_path / "cold-cache" / "universe").iterdir()] != []


def test_a_second_run_on_a_busy_lake_exits_3(make_emulator: Callable[..., Emulator],
                                             tmp_path: Path) -> None:
    weight = 600  # the first run crawls: 10 weight a second, its bucket emptied
    slow = make_emulator(frozen_config(NOW_MS, info_weight_per_minute=weight))
    env = funding_env(slow, weight)
    client_budget(slow, weight, Path(os.environ["HYPERLAKE_PACING_DIR"])).charge(weight)
    args = ["--coins", "BTC,ETH", "--start", "2026-03-24T00:00:00Z", "--end",
            "2026-03-31T00:00:00Z", "--hours-per-window", "1", "--lake", str(tmp_path), "--json"]
    first = start_cli(args, env)
    try:
        wait_until_extracting(tmp_path, first)
        second = run_funding(args, env)
        assert first.poll() is None, "the first run ended too soon to test the lock"
    finally:
        kill_group(first)
    assert_refused(second, ["another hyperlake run holds the lake", f"pid {first.pid}"],
                   code=3)

