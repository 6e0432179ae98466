"""``hyperlake emulator``: serve the bundled exchange emulator until interrupted."""

from __future__ import annotations

import argparse
import math
import os
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from hyperlake.emulator.config import (
    HTTP_FAULT_KINDS,
    WS_FAULT_KINDS,
    ClockConfig,
    ConfigError,
    EmulatorConfig,
    FaultRule,
)
from hyperlake.errors import HyperlakeError, UserError
from hyperlake.schemas.exchange import DWELLIR_PLANS

if TYPE_CHECKING:
    from hyperlake.emulator.server import Emulator

EPILOG = "fault kinds:\n" + "\n".join(
    f"  {kind:16} {text}" for kind, text in {**HTTP_FAULT_KINDS, **WS_FAULT_KINDS}.items()
)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "emulator",
        help="serve the local emulator of Hyperliquid, Hydromancer and Dwellir",
        description="Serve a deterministic emulator of Hyperliquid (/info, /ws), Hydromancer "
        "and Dwellir on 127.0.0.1 (HTTP/1.1, h2c, and HTTP/2 over TLS with a local CA), "
        "until Ctrl-C.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="cleartext port (default: a free port)")
    p.add_argument("--tls-port", type=int, help="TLS port (default: a free port)")
    p.add_argument("--no-tls", action="store_true", help="do not start the TLS server")
    p.add_argument("--seed", type=int, default=0, help="market seed (default 0)")
    p.add_argument("--clock", default="now",
                   help="the emulator's 'now': ISO-8601 UTC or 'now' (default now)")
    p.add_argument("--clock-rate", type=float, default=1.0,
                   help="clock speed: 0 frozen, 1 real time, 60 a minute per second")
    p.add_argument("--info-weight", type=int, default=1200,
                   help="Hyperliquid weight budget per minute per client IP (default 1200)")
    p.add_argument("--hydromancer-weight", type=int, default=6000,
                   help="Hydromancer weight budget per minute per key (default 6000)")
    p.add_argument("--hydromancer-key", action="append", default=None, metavar="KEY",
                   help="accepted Hydromancer API key (repeatable; default hm-test-key)")
    p.add_argument("--dwellir-key", action="append", default=None, metavar="KEY=PLAN",
                   help=f"Dwellir API key and plan {sorted(DWELLIR_PLANS)} (repeatable; "
                   "default dw-test-key=scale)")
    p.add_argument("--ws-replay-trades", type=int, default=30, metavar="N",
                   help="recent trades sent after each WebSocket `trades` subscribe (default 30)")
    p.add_argument("--ws-max-connections", type=int, default=100, metavar="N",
                   help="WebSocket connections per client IP; more are refused with HTTP 429 "
                   "(default 100)")
    p.add_argument("--ws-max-subscriptions", type=int, default=1000, metavar="N",
                   help="WebSocket subscriptions per client IP; more get an error frame "
                   "(default 1000)")
    p.add_argument("--fault", action="append", default=[], metavar="ENDPOINT:KIND:RATE[:DELAY]",
                   help="inject a fault, e.g. dwellir:429:0.05 or '*:slow:0.1:3' (repeatable)")
    p.add_argument("--fault-seed", type=int, default=0)
    p.add_argument("--cpu", type=int, help="pin the servers to this CPU core")
    p.add_argument("--json", action="store_true", help="print the base URLs as one JSON line")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    from hyperlake.schemas.times import parse_instant

    start = int(time.time() * 1000) if args.clock == "now" else parse_instant(args.clock,
                                                                              "--clock")
    if not math.isfinite(args.clock_rate) or args.clock_rate < 0:
        raise UserError("--clock-rate: must be a finite number >= 0")
    _check_binding(args)
    keys = {}
    for item in args.dwellir_key or ["dw-test-key=scale"]:
        key, sep, plan = item.partition("=")
        if not sep or plan not in DWELLIR_PLANS:
            raise UserError(f"--dwellir-key {item!r}: expected KEY=PLAN with PLAN one of "
                            f"{sorted(DWELLIR_PLANS)}")
        keys[key] = plan
    try:
        config = EmulatorConfig(
            seed=args.seed,
            clock=ClockConfig.running_from(start, args.clock_rate),
            info_weight_per_minute=args.info_weight,
            hydromancer_weight_per_minute=args.hydromancer_weight,
            hydromancer_keys=tuple(args.hydromancer_key or ["hm-test-key"]),
            dwellir_keys=keys,
            ws_replay_trades=args.ws_replay_trades,
            ws_max_connections=args.ws_max_connections,
            ws_max_subscriptions=args.ws_max_subscriptions,
            faults=tuple(FaultRule.parse(text) for text in args.fault),
            fault_seed=args.fault_seed,
        )
        config.validate()
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    return config


def _check_binding(args: argparse.Namespace) -> None:
    """Ports, address and CPU the servers can really have: one line, not a traceback."""
    for name, port in (("--port", args.port), ("--tls-port", args.tls_port)):
        if port is not None and not 1 <= port <= 65535:
            raise UserError(f"{name} {port}: a port is 1 to 65535 (or leave it out for a free "
                            "one)")
    try:
        socket.getaddrinfo(args.host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UserError(f"--host {args.host!r}: not an address this machine can bind, "
                        "e.g. 127.0.0.1") from None
    if args.cpu is not None and args.cpu not in os.sched_getaffinity(0):
        raise UserError(f"--cpu {args.cpu}: this process may run on CPUs "
                        f"{sorted(os.sched_getaffinity(0))}")
    for name, value in (("--info-weight", args.info_weight),
                        ("--hydromancer-weight", args.hydromancer_weight)):
        if value < 1:
            raise UserError(f"{name} {value}: must be at least 1")


def run(args: argparse.Namespace) -> int:
    from hyperlake.emulator.server import Emulator, EmulatorError

    config = config_from_args(args)
    emu = Emulator(config, tls=not args.no_tls, host=args.host, port=args.port,
                   tls_port=args.tls_port, cpu=args.cpu)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        emu.start()
    except EmulatorError as exc:
        raise HyperlakeError(str(exc)) from None
    try:
        _announce(emu, config, args.json)
        stop.wait()
    finally:
        emu.stop()
    return 0


def _announce(emu: Emulator, config: EmulatorConfig, as_json: bool) -> None:
    import orjson

    from hyperlake.schemas.times import format_instant

    urls = emu.urls
    if as_json:
        print(orjson.dumps(urls.__dict__).decode(), flush=True)
        return
    rate = config.clock.rate
    clock = "frozen" if rate == 0 else f"running x{rate:g}"
    lines = [
        f"hyperlake emulator  seed {config.seed}  clock {format_instant(config.clock.start_ms)} "
        f"({clock})",
        f"  Hyperliquid  POST {urls.hyperliquid}/info",
        f"  Hydromancer  POST {urls.hydromancer}/info   (Authorization: Bearer "
        f"{config.hydromancer_keys[0]})",
        f"  Dwellir      GET  {urls.dwellir}/{{KEY}}/v1/candles?market=BTC&interval=1m&time=ISO",
        f"  WebSocket         {urls.ws}",
    ]
    if urls.tls_hyperliquid:
        lines.append(f"  TLS (HTTP/2) {urls.tls_hyperliquid}   CA: {urls.ca_pem}")
    lines += [
        "Point hyperlake at it:",
        f"  export HYPERLAKE_HYPERLIQUID_URL={urls.hyperliquid}",
        f"  export HYPERLAKE_HYDROMANCER_URL={urls.hydromancer}",
        f"  export HYPERLAKE_DWELLIR_URL={urls.dwellir}",
        f"  export HYPERLAKE_WS_URL={urls.ws}",
        "Ctrl-C stops it.",
    ]
    print("\n".join(lines), flush=True)
    sys.stdout.flush()
