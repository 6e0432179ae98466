"""Child-process entry point: run one granian server for the emulator app.

``python -m hyperlake.emulator.serve --port P [--cert C --key K] [--cpu N]`` with the
configuration JSON in the ``HYPERLAKE_EMULATOR_CONFIG`` environment variable.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hyperlake.emulator.serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    parser.add_argument("--cpu", type=int, help="pin the server to this CPU core")
    args = parser.parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})

    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.server import Server

    server = Server(
        "hyperlake.emulator.app:create_app",
        address=args.host,
        port=args.port,
        interface=Interfaces.RSGI,
        factory=True,
        workers=1,
        http=HTTPModes.auto,
        websockets=True,
        loop=Loops.auto,
        log_enabled=False,
        ssl_cert=args.cert,
        ssl_key=args.key,
    )
    server.serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
