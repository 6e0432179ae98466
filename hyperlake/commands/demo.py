"""``hyperlake demo``: the whole product, offline, against the bundled emulator.

Today it starts the emulator and shows that every source answers and that they
agree with each other; it grows as the pipeline stages land.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import httpx
import orjson

from hyperlake.emulator.config import ClockConfig, EmulatorConfig
from hyperlake.emulator.server import Emulator
from hyperlake.schemas.intervals import MINUTE_MS
from hyperlake.schemas.times import format_instant, parse_instant

DEFAULT_CLOCK = "2026-03-31T00:00:00Z"
HYDROMANCER_KEY = "hm-demo"
DWELLIR_KEY = "dw-demo"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run hyperlake end to end offline against the bundled emulator",
        description="Start the bundled emulator on loopback and run hyperlake against it: "
        "every source is queried and reconciled. Needs no network.",
    )
    p.add_argument("--seed", type=int, default=0, help="market seed (default 0)")
    p.add_argument("--clock", default=DEFAULT_CLOCK,
                   help=f"the emulator's 'now' (default {DEFAULT_CLOCK})")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    now = parse_instant(args.clock, "--clock")
    config = EmulatorConfig(
        seed=args.seed,
        clock=ClockConfig.running_from(now, 60.0),  # a market minute per second
        hydromancer_keys=(HYDROMANCER_KEY,),
        dwellir_keys={DWELLIR_KEY: "scale"},
    )
    with Emulator(config) as emu:
        print(f"emulator up: {emu.urls.hyperliquid} (seed {args.seed}, clock from "
              f"{format_instant(now)}, running 60x)")
        with httpx.Client(timeout=10) as client:
            _show_sources(client, emu, now)
        asyncio.run(_show_stream(emu.urls.ws))
    print("demo finished: every source answered and agreed.")
    return 0


def _info(client: httpx.Client, base: str, body: dict[str, Any],
          key: str | None = None) -> Any:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    response = client.post(f"{base}/info", json=body, headers=headers)
    response.raise_for_status()
    return response.json()


def _show_sources(client: httpx.Client, emu: Emulator, now: int) -> None:
    bucket = now // MINUTE_MS * MINUTE_MS - 10 * MINUTE_MS
    req = {"coin": "BTC", "interval": "1m", "startTime": bucket, "endTime": bucket}
    native = _info(client, emu.urls.hyperliquid, {"type": "candleSnapshot", "req": req})[0]
    hydro = _info(client, emu.urls.hydromancer,
                  {"type": "candleSnapshot", "req": {**req, "endTime": bucket + 1}},
                  HYDROMANCER_KEY)[0]
    dwellir = client.get(f"{emu.urls.dwellir}/{DWELLIR_KEY}/v1/candles",
                         params={"market": "BTC", "interval": "1m",
                                 "time": format_instant(bucket)}).json()
    print(f"\nBTC 1m candle at {format_instant(bucket)} from three sources:")
    print(f"  {'source':12} {'open':>10} {'high':>10} {'low':>10} {'close':>10} "
          f"{'volume':>12} {'trades':>6}")
    for name, c in (("hyperliquid", native), ("hydromancer", hydro), ("dwellir", dwellir)):
        print(f"  {name:12} {c['o']:>10} {c['h']:>10} {c['l']:>10} {c['c']:>10} "
              f"{c['v']:>12} {c['n']:>6}")
    same = {(float(c["o"]), float(c["h"]), float(c["l"]), float(c["c"]), float(c["v"]), c["n"])
            for c in (native, hydro, dwellir)}
    print("  reconciled: " + ("identical" if len(same) == 1 else "MISMATCH"))
    if len(same) != 1:
        raise SystemExit(1)

    funding = _info(client, emu.urls.hyperliquid,
                    {"type": "fundingHistory", "coin": "BTC", "startTime": now - 3 * 3_600_000})
    print("\nBTC funding, last hours:")
    for row in funding:
        print(f"  {format_instant(row['time'])}  rate {row['fundingRate']:>13}  "
              f"premium {row['premium']:>13}")
    ones = _info(client, emu.urls.hydromancer, {"type": "candleSnapshot", "req": {
        "coin": "BTC", "interval": "1s", "startTime": bucket, "endTime": bucket + MINUTE_MS}},
        HYDROMANCER_KEY)
    print(f"\nHydromancer 1s candles in that minute: {len(ones)} of 60 seconds traded "
          f"(sum of trades {sum(c['n'] for c in ones)} = the 1m candle's {native['n']})")


async def _show_stream(url: str) -> None:
    import websockets

    async with websockets.connect(url) as ws:
        greeting = await ws.recv()
        await ws.send(orjson.dumps({"method": "subscribe",
                                    "subscription": {"type": "trades", "coin": "BTC"}}).decode())
        print(f"\nWebSocket {url}: {greeting!r}")
        while True:
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
            if frame.get("channel") == "trades":
                trade = frame["data"][0]
                print(f"  first streamed trade: {trade['side']} {trade['sz']} BTC @ {trade['px']} "
                      f"at {format_instant(trade['time'])}")
                return
