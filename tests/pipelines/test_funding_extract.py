"""``hyperlake funding`` end to end against the emulator: the real recorded BTC history,
window edges, many coins in flight, "NaN" premiums, pacing without 429s, and resume
after ``kill -9``."""

from __future__ import annotations

import itertools
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.lake.store import Location
from hyperlake.schemas.intervals import HOUR_MS
from tests.conftest import NOW_MS, load_fixture, on_disk
from tests.pipelines.test_funding_support import (
    DAY_MS,
    FAST_WEIGHT,
    MODEL,
    Row,
    api_rows,
    assert_complete,
    client_budget,
    comparable,
    extract,
    fast_emulator,
    funding_args,
    funding_env,
    info_requests,
    kill_group,
    lake_rows,
    model_rows,
    ms,
    part_rows,
    series_of,
    start_cli,
    stat,
    tmp_files,
    values,
    wait_until_extracting,
    warm_universe,
)

RECORDING = "fundingHistory_BTC_2023_noEndTime_1038rows.json"
BTC_START, BTC_END = ms("2023-05-01T00:00:00Z"), ms("2023-08-01T00:00:00Z")
HOURLY_FROM = ms("2023-06-08T00:00:00Z")


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with fast_emulator() as emulator:
        yield emulator


def module_env(emu: Emulator, factory: pytest.TempPathFactory) -> dict[str, str]:
    """Module fixtures run before conftest's per-test pacing folder: give them one."""
    return funding_env(emu, HYPERLAKE_PACING_DIR=str(factory.mktemp("pacing")))


def hour_of(t: int) -> int:
    return t // HOUR_MS * HOUR_MS


# -- the real recorded BTC history ----------------------------------------------------------


@pytest.fixture(scope="module")
def recording() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = load_fixture(RECORDING)
    assert len(rows) == 1038
    return rows


@pytest.fixture(scope="module")
def btc_lakes(emu: Emulator, tmp_path_factory: pytest.TempPathFactory
              ) -> dict[int, tuple[Path, dict[str, Any]]]:
    """BTC over 2023-05-01 → 2023-08-01 with windows of 24 h (< 500 rows each) and of
    2000 h (> 500 rows: paged), each in its own lake."""
    env = module_env(emu, tmp_path_factory)
    out = {}
    for hours in (24, 2000):
        lake = tmp_path_factory.mktemp(f"btc-{hours}")
        summary = extract(funding_args("BTC", BTC_START, BTC_END, lake,
                                       "--hours-per-window", str(hours)), env)
        out[hours] = (lake, summary)
    return out


@pytest.mark.parametrize("hours", [24, 2000])
def test_rows_inside_the_recording_equal_it_exactly(
        btc_lakes: dict[int, tuple[Path, dict[str, Any]]], recording: list[dict[str, Any]],
        hours: int) -> None:
    lake, summary = btc_lakes[hours]
    rows = lake_rows(lake, "BTC")
    first, last = recording[0]["time"], recording[-1]["time"]
    inside = [r for r in rows if first <= r[0] <= last]
    want = [(r["time"], float(r["fundingRate"]), float(r["premium"])) for r in recording]
    assert values(inside) == want
    assert summary["rows"] == len(rows) and summary["gaps"] == 0
    times = [r[0] for r in rows]
    assert len(set(times)) == len(times), "a row was stored twice"
    assert all(hour == hour_of(t) for t, hour, _, _ in rows)
    # What the recording is known for survives: the 8 h → 1 h switch, the missing
    # 2023-07-02T20:00 and the off-hour events (2023-05-23T08:23:53.040 among them).
    eight_hourly = [hour for _, hour, _, _ in inside if hour < HOURLY_FROM]
    hourly = [hour for _, hour, _, _ in inside if hour >= HOURLY_FROM]
    assert {b - a for a, b in itertools.pairwise(eight_hourly)} == {8 * HOUR_MS}
    assert hourly[0] == HOURLY_FROM == eight_hourly[-1] + 8 * HOUR_MS
    steps = [b - a for a, b in itertools.pairwise(hourly)]
    assert steps.count(2 * HOUR_MS) == 1 and set(steps) == {HOUR_MS, 2 * HOUR_MS}
    assert ms("2023-07-02T20:00:00Z") not in {r[1] for r in rows}
    assert {ms("2023-07-02T19:00:00Z"), ms("2023-07-02T21:00:00Z")} <= {r[1] for r in rows}
    off_hour = [(t, hour) for t, hour, _, _ in inside if t % HOUR_MS >= 1000]
    assert (1_684_830_233_040, ms("2023-05-23T08:00:00Z")) in off_hour
    assert len(off_hour) == 4


def test_window_sizes_below_and_above_500_rows_store_the_same_rows(
        btc_lakes: dict[int, tuple[Path, dict[str, Any]]]) -> None:
    (small, small_summary), (large, large_summary) = btc_lakes[24], btc_lakes[2000]
    assert lake_rows(small, "BTC") == lake_rows(large, "BTC")
    assert small_summary["windows"] == (BTC_END - BTC_START) // DAY_MS
    # 2000-hour windows are paged by 500 rows: a window of n rows takes n // 500 + 1 pages.
    pages = sum(len(rows) // 500 + 1 for _, rows in part_rows(large, "BTC"))
    assert large_summary["windows"] == 2 and large_summary["requests"] == pages > 2


def test_rows_before_the_recording_are_the_models_8_hourly_events(
        btc_lakes: dict[int, tuple[Path, dict[str, Any]]], recording: list[dict[str, Any]],
        emu: Emulator) -> None:
    lake, _ = btc_lakes[24]
    before = [r for r in lake_rows(lake, "BTC") if r[0] < recording[0]["time"]]
    hours = list(range(BTC_START, hour_of(recording[0]["time"]), 8 * HOUR_MS))
    assert [r[1] for r in before] == hours  # 33 events, every 8 h, none hourly
    assert values(before) == model_rows("BTC", hours)
    assert values(before) == api_rows(emu, "BTC", BTC_START, hours[-1] + HOUR_MS)
    assert all(5 <= t - hour < 1000 for t, hour, _, _ in before)


def test_rows_after_the_recording_are_the_models_hourly_events(
        btc_lakes: dict[int, tuple[Path, dict[str, Any]]], recording: list[dict[str, Any]],
        emu: Emulator) -> None:
    lake, _ = btc_lakes[24]
    after = [r for r in lake_rows(lake, "BTC") if r[0] > recording[-1]["time"]]
    assert after[-1][1] == BTC_END - HOUR_MS
    assert all(b[1] - a[1] == HOUR_MS for a, b in itertools.pairwise(after))
    assert all(5 <= t - hour < 1000 for t, hour, _, _ in after)
    assert values(after) == model_rows("BTC", [hour for _, hour, _, _ in after])
    assert values(after) == api_rows(emu, "BTC", after[0][0], BTC_END)


def test_no_funding_hour_is_stored_twice(
        btc_lakes: dict[int, tuple[Path, dict[str, Any]]], recording: list[dict[str, Any]]
        ) -> None:
    lake, _ = btc_lakes[24]
    rows = lake_rows(lake, "BTC")
    hours = [r[1] for r in rows]
    doubled = sorted({h for h in hours if hours.count(h) > 1})
    assert doubled == [], f"funding hours with two rows: {doubled}"
    after = [r for r in rows if r[0] > recording[-1]["time"]]
    assert after[0][1] == hour_of(recording[-1]["time"]) + HOUR_MS


# -- window edges ---------------------------------------------------------------------------

EDGE_CASES = {
    # the 8 h → 1 h switch (ETH from the model, BTC from the recording)
    "cadence-switch": ("ETH,BTC", "2023-06-07T00:00:00Z", "2023-06-09T00:00:00Z"),
    # recorded rows 1.669 s and 5.457 s after the hour, and the missing 2023-07-02T20:00
    "off-hour-rows": ("BTC", "2023-07-12T00:00:00Z", "2023-07-13T00:00:00Z"),
    "missing-hour": ("BTC", "2023-07-02T12:00:00Z", "2023-07-03T00:00:00Z"),
    "recent": ("SOL,kPEPE", "2026-03-29T00:00:00Z", "2026-03-31T00:00:00Z"),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_every_row_lands_once_whatever_the_window_size(emu: Emulator, tmp_path: Path,
                                                       case: str) -> None:
    coins, start_text, end_text = EDGE_CASES[case]
    start, end = ms(start_text), ms(end_text)
    stored: dict[int, dict[str, list[Row]]] = {}
    for hours in (1, 7, 24, 336):
        lake = tmp_path / f"w{hours}"
        summary = extract(funding_args(coins, start, end, lake,
                                       "--hours-per-window", str(hours)), funding_env(emu))
        assert summary["windows"] == len(coins.split(",")) * math.ceil((end - start)
                                                                      / (hours * HOUR_MS))
        stored[hours] = {}
        for coin in coins.split(","):
            for span, rows in part_rows(lake, coin):
                assert all(span.start <= r[0] < span.end for r in rows), (hours, span)
            stored[hours][coin] = lake_rows(lake, coin)
    assert stored[1] == stored[7] == stored[24] == stored[336]
    for coin, rows in stored[1].items():
        assert values(rows) == api_rows(emu, coin, start, end), coin
        # Rows a few ms after the hour sit a few ms after a boundary of the 1 h windows.
        assert sum(t % HOUR_MS < 1000 for t, _, _, _ in rows) > 0


# -- many coins in flight -------------------------------------------------------------------


def test_several_coins_in_flight_equal_the_api(emu: Emulator, lake_root: Location) -> None:
    start = NOW_MS - 30 * DAY_MS  # 720 rows a coin: paged in one 720-hour window
    summary = extract(funding_args("btc,ETH,Sol,kpepe", start, NOW_MS, lake_root,
                                   "--hours-per-window", "720"), funding_env(emu))
    coins = ["BTC", "ETH", "SOL", "kPEPE"]
    assert summary["coins"] == 4 and summary["rows"] == 4 * 720
    assert summary["requests"] == 4 * 2  # 500 + 220 rows
    for coin in coins:
        assert values(lake_rows(lake_root, coin)) == api_rows(emu, coin, start, NOW_MS), coin
        assert_complete(lake_root, coin, start, NOW_MS)


def test_all_coins_for_one_day_equal_the_api(emu: Emulator, tmp_path: Path) -> None:
    start = NOW_MS - DAY_MS
    perps = [i for i in MODEL.universe.instruments.values()
             if i.has_funding and i.delisted_ms is None]
    args = ["--all", "--start", "2026-03-30T00:00:00Z", "--end", "2026-03-31T00:00:00Z",
            "--lake", str(tmp_path), "--json"]
    summary = extract(args, funding_env(emu))
    assert summary["coins"] == len(perps) > 150
    assert summary["rows"] == 24 * len(perps) and summary["gaps"] == 0
    for inst in perps:
        assert values(lake_rows(tmp_path, inst.name)) == api_rows(emu, inst.name, start,
                                                                   NOW_MS), inst.name
    assert "xyz:XYZ100" in {i.name for i in perps}  # HIP-3 perps pay funding too
    assert not on_disk(series_of(tmp_path, "MATIC").folder).exists()  # delisted: not with --all


# -- "NaN" ----------------------------------------------------------------------------------


def test_nan_premiums_are_kept_as_float_nan(make_emulator: Callable[..., Emulator],
                                            tmp_path: Path) -> None:
    emu = make_emulator(frozen_config(NOW_MS, funding_nan_every=5,
                                      info_weight_per_minute=FAST_WEIGHT))
    start = NOW_MS - 3 * DAY_MS
    summary = extract(funding_args("ETH,BTC", start, NOW_MS, tmp_path), funding_env(emu))
    assert summary["gaps"] == 0 and summary["failed_windows"] == 0 and summary["retried"] == 0
    for coin in ("ETH", "BTC"):
        rows = lake_rows(tmp_path, coin)
        want = api_rows(emu, coin, start, NOW_MS)
        assert comparable(values(rows)) == comparable(want)
        nan_hours = [hour for _, hour, _, premium in rows if math.isnan(premium)]
        assert nan_hours == [h for _, h, _, _ in rows if (h // HOUR_MS) % 5 == 0]
        assert len(nan_hours) == 72 // 5 + 1
        assert not any(math.isnan(rate) for _, _, rate, _ in rows)
        for _, path in series_of(tmp_path, coin).parts():
            assert pq.read_table(path).column("premium").null_count == 0  # NaN, not null


# -- pacing: no 429 while the budget binds ----------------------------------------------------

PACED_WEIGHT = 6000  # per minute, the emulator's and the client's


def paced_job(emu: Emulator, lake: Path, coins: int, windows: int
              ) -> tuple[dict[str, Any], float]:
    """``coins`` coins x ``windows`` windows of 480 hours (one 480-row page each: 44
    weight a request); the summary and the wall time of the run."""
    names = ",".join(i.name for i in MODEL.universe.perps(include_delisted=False)[:coins])
    start = NOW_MS - windows * 480 * HOUR_MS
    begun = time.monotonic()
    summary = extract(funding_args(names, start, NOW_MS, lake, "--hours-per-window", "480"),
                      funding_env(emu, PACED_WEIGHT))
    return summary, time.monotonic() - begun


def lower_bound_s(weight: float) -> float:
    """A full bucket at the start (like the server's), then weight / minute."""
    return max(0.0, weight - PACED_WEIGHT) / (PACED_WEIGHT / 60)


def settle(emu: Emulator) -> None:
    """Wait until the server's bucket has refilled what was spent so far."""
    time.sleep(stat(emu, "info_weight") / (PACED_WEIGHT / 60) + 0.2)
    emu.reset_stats()


def test_no_429_while_the_budget_binds(make_emulator: Callable[..., Emulator],
                                       tmp_path: Path) -> None:
    emu = make_emulator(frozen_config(NOW_MS, info_weight_per_minute=PACED_WEIGHT))
    lake = tmp_path / "lake"
    warm_universe(emu)
    settle(emu)
    summary, wall = paced_job(emu, lake, coins=45, windows=4)
    stats = emu.stats()
    assert stats.get("info_status_429", 0) == 0, stats
    assert summary["requests"] == 180 and summary["retried"] == 0
    assert summary["weight"] == stats["info_weight"] == 180 * 44
    bound = lower_bound_s(summary["weight"])
    assert bound > 15
    assert wall >= bound - 0.5, (wall, bound)  # the budget was honoured...
    assert wall <= 1.5 * bound + 5, (wall, bound)  # ...and used


def test_no_429_while_the_budget_binds_on_a_fresh_lake(
        make_emulator: Callable[..., Emulator], tmp_path: Path) -> None:
    emu = make_emulator(frozen_config(NOW_MS, info_weight_per_minute=PACED_WEIGHT))
    summary, _ = paced_job(emu, tmp_path, coins=30, windows=5)
    assert lower_bound_s(summary["weight"]) > 3
    assert emu.stats().get("info_status_429", 0) == 0


# -- resume after kill -9 ---------------------------------------------------------------------


def test_kill_9_at_random_instants_then_resume_equals_a_clean_run(
        emu: Emulator, make_emulator: Callable[..., Emulator], tmp_path: Path) -> None:
    coins = ["BTC", "ETH", "SOL", "kPEPE", "DOGE", "AVAX", "LINK", "ARB"]
    start, end = NOW_MS - 5 * DAY_MS, NOW_MS
    args = ["--hours-per-window", "24"]
    clean = tmp_path / "clean"
    extract(funding_args(",".join(coins), start, end, clean, *args), funding_env(emu))

    weight = 12_000  # 200 a second: ~10 one-day windows a second once the bucket is empty
    slow = make_emulator(frozen_config(NOW_MS, info_weight_per_minute=weight))
    env = funding_env(slow, weight)
    budget = client_budget(slow, weight, Path(os.environ["HYPERLAKE_PACING_DIR"]))
    budget.charge(weight)  # as if another run had just spent the burst: paced from now on
    lake = tmp_path / "lake"
    total = len(coins) * 5
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    seen = []
    for _ in range(4):
        process = start_cli(funding_args(",".join(coins), start, end, lake, *args), env)
        wait_until_extracting(lake, process)
        time.sleep(rng.uniform(0.2, 1.2))
        if process.poll() is not None:
            break
        kill_group(process)
        seen.append(sum(len(part_rows(lake, c)) for c in coins))
    assert any(0 < n < total for n in seen), f"no kill landed mid-job: {seen} (seed {seed})"

    summary = extract(funding_args(",".join(coins), start, end, lake, *args), env)
    assert summary["gaps"] == 0, seed
    for coin in coins:
        assert lake_rows(lake, coin) == lake_rows(clean, coin), (coin, seed)
        assert_complete(lake, coin, start, end)
        assert series_of(lake, coin).missing(Span(start, end)) == RangeSet()
    assert tmp_files(lake) == []

    before = info_requests(slow)
    again = extract(funding_args(",".join(coins), start, end, lake, *args), env)
    assert again["requests"] == 0 and again["windows"] == 0
    assert info_requests(slow) == before
