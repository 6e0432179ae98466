"""``hyperlake stream`` end to end, against the emulator's WebSocket at an accelerated
clock: every bucket the stream decides holds exactly the exchange's REST candle
(o h l c v n), through dropped, closed and stalled connections and ``kill -9``s, and
nothing is written twice after compaction."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from hyperlake.emulator.config import FaultRule
from hyperlake.emulator.market import Market, format_decimal
from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.store import Location
from hyperlake.pipelines.compact import CompactJob, run_compact
from hyperlake.pipelines.stream.trades import NATIVE_SCANNER
from hyperlake.query.catalog import connect
from hyperlake.schemas.intervals import bucket_opens
from tests.conftest import on_disk
from tests.pipelines.test_candles_support import cli_env, iso, ms, seed_universe

T0 = ms("2026-03-30T00:00:00Z")
MODEL = Market(seed=0)
Bar = tuple[float, float, float, float, float, int]


@dataclasses.dataclass
class Stream:
    emu: Emulator
    lake: Location
    rate: float
    anchor: float

    def env(self, **extra: str) -> dict[str, str]:
        return cli_env(self.emu, HYPERLAKE_NOW=iso(T0), HYPERLAKE_CLOCK_RATE=str(self.rate),
                       HYPERLAKE_CLOCK_ANCHOR=repr(self.anchor),
                       HYPERLAKE_WS_URL=self.emu.urls.ws, HYPERLAKE_BACKOFF_BASE="0.01",
                       **extra)

    def start(self, *argv: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "hyperlake.cli", "stream", "--lake", str(self.lake),
             "--compact-every", "0", *argv], env=self.env(**env), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def now_ms(self) -> int:
        return T0 + int((time.time() - self.anchor) * 1000 * self.rate)


def starter(make_emulator: Any, lake: Location) -> Any:
    """A way to start an emulator whose clock runs from T0 at ``rate``."""
    def start(rate: float, *faults: FaultRule) -> Stream:
        # a REST budget the repairs of hours of market in seconds cannot exhaust
        config = dataclasses.replace(frozen_config(T0, info_weight_per_minute=10**7),
                                     faults=faults)
        emu: Emulator = make_emulator(config, gateway=bool(faults))
        seed_universe(emu)
        anchor = time.time()
        emu.set_clock(T0, rate)
        return Stream(emu, lake, rate, anchor)

    return start


@pytest.fixture
def running(make_emulator: Any, tmp_path: Path) -> Iterator[Any]:
    yield starter(make_emulator, tmp_path / "lake")


@pytest.fixture
def running_anywhere(make_emulator: Any, lake_root: Location) -> Iterator[Any]:
    """``running``, on a local lake and on an s3:// one (the stream's lock a lease)."""
    yield starter(make_emulator, lake_root)


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[str, str]:
    process.send_signal(sig)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out, err


def model_bar(coin: str, interval: str, open_ms: int) -> Bar | None:
    candle = MODEL.candle(coin, interval, open_ms, open_ms + 10**12)
    if candle is None:
        return None
    inst = MODEL.instrument(coin)
    px = inst.px_decimals
    return (float(format_decimal(candle.o, px)), float(format_decimal(candle.h, px)),
            float(format_decimal(candle.low, px)), float(format_decimal(candle.c, px)),
            float(format_decimal(candle.volume_lots, inst.sz_decimals)), candle.trades)


def lake_bars(lake: Location) -> dict[tuple[str, str, int], tuple[Bar, str]]:
    con = connect(lake)
    rows = con.execute("SELECT market, interval, epoch_ms(t), o, h, l, c, v, n, source "
                       "FROM candles").fetchall()
    out: dict[tuple[str, str, int], tuple[Bar, str]] = {}
    for market, interval, t, o, h, low, c, v, n, source in rows:
        assert (market, interval, t) not in out, "a bar twice in the lake"
        out[(market, interval, t)] = ((o, h, low, c, v, n), source)
    return out


def assert_exact(lake: Location, coins: list[str], intervals: list[str]) -> dict[str, int]:
    """Compact; then every bucket the stream's series settle holds exactly the REST
    candle (or nothing, when the bucket had no trade). Returns rows per source."""
    run_compact(CompactJob(lake=lake))
    bars = lake_bars(lake)
    sources: dict[str, int] = {}
    for coin in coins:
        for interval in intervals:
            series = Series(LakePaths(lake), SeriesKey("candles", "stream", coin, interval))
            done = series.done()
            assert done, f"the stream settled nothing of {coin} {interval}"
            for span in done:
                for open_ms in bucket_opens(span.start, span.end, interval):
                    want = model_bar(coin, interval, open_ms)
                    got = bars.get((coin, interval, open_ms))
                    assert (got[0] if got else None) == want, (coin, interval, iso(open_ms))
                    if got:
                        sources[got[1]] = sources.get(got[1], 0) + 1
    return sources


def test_bars_are_exact_through_dropped_closed_and_stalled_connections(
        running: Any) -> None:
    """The acceptance property: 5 coins x 3 intervals over more than 2 emulated hours,
    WebSocket faults on 10 % of seconds."""
    faults = (FaultRule("ws", "ws_drop", 0.04), FaultRule("ws", "ws_disconnect", 0.03),
              FaultRule("ws", "ws_stall", 0.03))
    stream = running(400.0, *faults)
    coins = ["BTC", "ETH", "SOL", "kPEPE", "HYPE"]
    intervals = ["1m", "5m", "15m"]
    process = stream.start("--coins", ",".join(coins), "--intervals", ",".join(intervals),
                           "--grace", "90s", "--json-log", HYPERLAKE_SETTLE="120",
                           HYPERLAKE_WS_STALE="2")
    while stream.now_ms() < T0 + 140 * 60_000:
        time.sleep(0.5)
    _, err = stop(process)
    events = [orjson.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert sum(e["event"] == "lost" for e in events) >= 1, "the faults never hit"
    sources = assert_exact(stream.lake, coins, intervals)
    assert sources.get("stream", 0) > 100
    status = orjson.loads(on_disk(stream.lake / "_state/stream/status.json").read_bytes())
    # (whether a replay repeated trades depends on which faults hit: a stall's replay
    # comes too late to overlap; the next test forces one that does)
    assert status["reconnects"] >= 1
    assert status["frames_read_by"] == ("native scanner" if NATIVE_SCANNER else "msgspec")


def test_the_replay_after_a_reconnect_is_counted_once(running: Any) -> None:
    """A disconnect, then at once the resubscribe's replay of the last ~30 trades:
    those already counted are refused by tid, and the bars stay exact."""
    stream = running(120.0)
    coins = ["BTC", "ETH"]
    process = stream.start("--coins", ",".join(coins), "--intervals", "1m", "--grace", "20s",
                           HYPERLAKE_SETTLE="30")
    while stream.now_ms() < T0 + 4 * 60_000:
        time.sleep(0.2)
    stream.emu.set_faults([FaultRule("ws", "ws_disconnect", 1.0)])  # drawn once a second
    time.sleep(1.5)
    stream.emu.set_faults([])
    while stream.now_ms() < T0 + 10 * 60_000:
        time.sleep(0.2)
    stop(process)
    status = orjson.loads(on_disk(stream.lake / "_state/stream/status.json").read_bytes())
    assert status["reconnects"] >= 1 and status["duplicates"] > 0
    assert_exact(stream.lake, coins, ["1m"])


def test_kill_minus_9_and_restart_lose_and_duplicate_nothing(running: Any) -> None:
    stream = running(300.0)
    coins, intervals = ["BTC", "ETH"], ["1m", "5m"]
    argv = ("--coins", ",".join(coins), "--intervals", ",".join(intervals), "--grace", "60s")
    for cycle in range(20):
        process = stream.start(*argv, HYPERLAKE_SETTLE="60")
        time.sleep(0.6 + (cycle % 5) * 0.2)
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
    last = stream.start(*argv, HYPERLAKE_SETTLE="60")
    while stream.now_ms() < T0 + 180 * 60_000:  # past the settle of the last kill
        time.sleep(0.5)
    stop(last)
    sources = assert_exact(stream.lake, coins, intervals)
    assert sources.get("hyperliquid", 0) > 0, "the kills left nothing to repair"
    for coin in coins:
        for interval in intervals:
            done = Series(LakePaths(stream.lake),
                          SeriesKey("candles", "stream", coin, interval)).done()
            assert len(done.spans) == 1, (coin, interval, done)  # no hole left


def test_a_long_stall_is_repaired_from_rest_with_its_source(running: Any) -> None:
    stream = running(300.0, FaultRule("ws", "ws_stall", 0.3))
    process = stream.start("--coins", "BTC", "--intervals", "1m", "--grace", "60s",
                           HYPERLAKE_SETTLE="60", HYPERLAKE_WS_STALE="3")
    while stream.now_ms() < T0 + 90 * 60_000:
        time.sleep(0.5)
    stop(process)
    sources = assert_exact(stream.lake, ["BTC"], ["1m"])
    assert sources.get("hyperliquid", 0) > 0 and sources.get("stream", 0) > 0


def test_unrepairable_1s_buckets_go_to_the_ledger(running: Any) -> None:
    """1s bars are not on Hyperliquid's REST: a bucket the stream could not vouch for
    (across a stall longer than the replay) goes to the gap ledger, never guessed."""
    stream = running(120.0, FaultRule("ws", "ws_stall", 0.3))
    process = stream.start("--coins", "BTC", "--intervals", "1s", "--grace", "20s",
                           HYPERLAKE_SETTLE="30", HYPERLAKE_HYDROMANCER_KEY="",
                           HYPERLAKE_WS_STALE="2")
    lake = stream.lake
    series = Series(LakePaths(lake), SeriesKey("candles", "stream", "BTC", "1s"))
    deadline = time.monotonic() + 40
    while not series.gaps() and time.monotonic() < deadline:
        time.sleep(0.2)
    stop(process)
    gaps = series.gaps()
    assert gaps and "HYPERLAKE_HYDROMANCER_KEY" in gaps[0].info["reason"]


def test_csv_rows_are_whole_and_match_the_bars(running: Any, tmp_path: Path) -> None:
    stream = running(300.0)
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    process = stream.start("--coins", "ETH", "--intervals", "1m", "--grace", "20s",
                           "--csv-dir", str(csv_dir))
    while stream.now_ms() < T0 + 20 * 60_000:
        time.sleep(0.3)
    stop(process)
    lines = (csv_dir / "ETH_1m.csv").read_text().splitlines()
    assert lines[0] == "Datetime,Open,High,Low,Close,Volume"
    assert len(lines) > 10
    for line in lines[1:]:
        day, o, h, low, c, v = line.split(",")
        t = ms(day.replace(" ", "T") + "Z")
        want = model_bar("ETH", "1m", t)
        assert want is not None and (float(o), float(h), float(low), float(c), float(v)) \
            == want[:5], line


@pytest.mark.parametrize(("argv", "needle"), [
    (["--coins", "NOPE"], "unknown market 'NOPE'"),
    (["--coins", "BTC", "--intervals", "2m"], "--intervals '2m'"),
    (["--coins", "BTC", "--grace", "soon"], "--grace"),
    (["--coins", "BTC", "--grace", "1h"], "--grace"),
    (["--include-spot", "--coins", "BTC"], "--include-spot goes with --all"),
])
def test_bad_input_is_one_line_before_any_connection(running: Any, argv: list[str],
                                                     needle: str) -> None:
    stream = running(0.0)
    process = stream.start(*argv)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2, err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert stream.emu.stats().get("ws_messages_in", 0) == 0


def test_a_second_streamer_on_the_lake_exits_3(running_anywhere: Any) -> None:
    stream = running_anywhere(10.0)
    first = stream.start("--coins", "BTC")
    time.sleep(1.5)
    second = stream.start("--coins", "ETH")
    _, err = second.communicate(timeout=60)
    assert second.returncode == 3, err
    stop(first)


def test_kept_trades_are_every_trade_of_the_spans_they_cover_once(running: Any) -> None:
    stream = running(120.0, FaultRule("ws", "ws_drop", 0.1))
    process = stream.start("--coins", "BTC", "--intervals", "1m", "--grace", "20s",
                           "--keep-trades")
    while stream.now_ms() < T0 + 15 * 60_000:
        time.sleep(0.3)
    stop(process)
    run_compact(CompactJob(lake=stream.lake))
    series = Series(LakePaths(stream.lake), SeriesKey("trades", "stream", "BTC", ""))
    covered = series.done()
    assert covered.total() > 10 * 60_000
    con = connect(stream.lake)
    rows = con.execute("SELECT epoch_ms(time), tid, px, sz, side FROM trades "
                       "WHERE market = 'BTC' ORDER BY time, tid").fetchall()
    assert len(rows) == len({tid for _, tid, *_ in rows}), "a trade twice"
    inst = MODEL.instrument("BTC")
    want = [(t.time_ms, t.tid, float(format_decimal(t.ticks, inst.px_decimals)),
             float(format_decimal(t.lots, inst.sz_decimals)), "B" if t.is_buy else "A")
            for span in covered for t in MODEL.trades("BTC", span.start, span.end)]
    assert rows == want
