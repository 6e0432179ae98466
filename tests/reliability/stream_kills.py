"""``kill -9`` of ``hyperlake stream`` at random instants, then a restart: every bucket
the stream's series settle holds exactly the exchange's candle, none twice, and the
settled range has no hole (what the kills cost is repaired from REST).

The emulator's clock runs fast (``RATE`` emulated seconds per second) and the client's
with it, so a round covers an hour of market in a few seconds.
"""

from __future__ import annotations

import dataclasses
import random
import signal
import time
from collections import Counter
from pathlib import Path

from hyperlake.emulator.server import frozen_config
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.query.catalog import connect
from hyperlake.schemas.intervals import bucket_opens
from tests.conftest import on_disk
from tests.pipelines.stream.test_stream_e2e import model_bar
from tests.pipelines.test_candles_support import group_members, iso, ms, seed_universe, start_cli
from tests.reliability.support import (
    EXIT_OK,
    MINUTE_MS,
    StartEmulator,
    Tallies,
    Tally,
    env_for,
    hyperlake,
    kill_and_reap,
    leftovers,
    lock_is_free,
    run,
)

T0 = ms("2026-03-30T00:00:00Z")
RATE = 300.0  # emulated seconds per second (the emulator sends trades every 0.1 s: 30 s)
COINS, INTERVALS = ("BTC", "ETH"), ("1m", "5m")
SETTLE_S, GRACE = 60, "60s"  # the grace must exceed how late trades come: 30 s


def stream_round(start: StartEmulator, folder: Path, rng: random.Random,
                 kills: int = 2) -> Tallies:
    tally = Tally(runs=1)
    config = dataclasses.replace(frozen_config(T0, info_weight_per_minute=10**7))
    emu = start(config)
    seed_universe(emu)
    anchor = time.time()
    emu.set_clock(T0, RATE)
    env = env_for(emu, HYPERLAKE_NOW=iso(T0), HYPERLAKE_CLOCK_RATE=str(RATE),
                  HYPERLAKE_CLOCK_ANCHOR=repr(anchor), HYPERLAKE_WS_URL=emu.urls.ws,
                  HYPERLAKE_SETTLE=str(SETTLE_S))
    lake = folder / "lake"
    argv = hyperlake("stream", "--lake", str(lake), "--compact-every", "0", "--coins",
                     ",".join(COINS), "--intervals", ",".join(INTERVALS), "--grace", GRACE)

    def now_ms() -> int:
        return T0 + int((time.time() - anchor) * 1000 * RATE)

    for _ in range(kills):
        process = start_cli(argv, env)
        time.sleep(rng.uniform(0.3, 2.5))
        landed = process.poll() is None
        tally.scan(kill_and_reap(process))
        problems = [] if lock_is_free(on_disk(LakePaths(lake).state) / "stream.lock") else \
            ["the stream lock is held after the kill"]
        problems += [f"a process outlived the kill: {cmd!r}"
                     for cmd in group_members(process.pid).values()]
        tally.problems += problems
        if landed:
            tally.kills += 1
            tally.survived += not problems
    last_kill = now_ms()

    process = start_cli(argv, env)
    until = last_kill + 12 * MINUTE_MS  # the 5m bucket of the kill, settled and repaired
    while now_ms() < until and process.poll() is None:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    tally.scan(stdout, stderr)
    tally.expect(process.returncode == EXIT_OK,
                 f"the stream exited {process.returncode}: {stderr[-300:]}")
    done = run(hyperlake("compact", "--lake", str(lake)), env)
    tally.scan(done.stdout, done.stderr)
    tally.expect(done.returncode == EXIT_OK, f"compact exited {done.returncode}")
    check_bars(tally, lake, last_kill)
    tally.problems += leftovers(lake, compacted=True)
    return {"kill -9: stream": tally}


def check_bars(tally: Tally, lake: Path, last_kill: int) -> None:
    with connect(lake) as con:
        rows = con.execute("SELECT market, interval, epoch_ms(t), o, h, l, c, v, n FROM candles"
                           ).fetchall()
    keys = Counter((m, i, t) for m, i, t, *_ in rows)
    tally.rows_duplicated += sum(n - 1 for n in keys.values())
    bars = {(m, i, t): (o, h, low, c, v, n) for m, i, t, o, h, low, c, v, n in rows}
    for coin in COINS:
        for interval in INTERVALS:
            done = Series(LakePaths(lake), SeriesKey("candles", "stream", coin, interval)).done()
            label = f"stream {coin} {interval}"
            if not tally.expect(len(done.spans) == 1, f"{label}: settled {done} (a hole)"):
                continue
            tally.expect(done.spans[0].end > last_kill,
                         f"{label}: settled only up to {iso(done.spans[0].end)}")
            for open_ms in bucket_opens(done.spans[0].start, done.spans[0].end, interval):
                want, got = model_bar(coin, interval, open_ms), bars.get((coin, interval,
                                                                            open_ms))
                if want is not None and got is None:
                    tally.rows_lost += 1
                else:
                    tally.expect(got == want, f"{label} {iso(open_ms)}: {got} is not {want}")
