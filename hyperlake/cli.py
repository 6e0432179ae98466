"""The ``hyperlake`` command: one entry point, one module per subcommand.

Importing this module must stay cheap: every ``--help`` pays for it, and so does every
worker process the Dwellir extractor spawns (they re-import the console script). A
command module declares its arguments in ``register`` from light constants only and
imports polars, duckdb, pyarrow, httpx, the pipelines and the emulator server inside
the functions that run it (``tests/commands/test_cli_startup.py`` checks).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from hyperlake import __version__
from hyperlake.commands import (
    candles,
    compact,
    demo,
    emulator,
    export,
    funding,
    plot,
    sql,
    verify,
)
from hyperlake.errors import HyperlakeError

COMMANDS = (candles, funding, compact, sql, export, plot, emulator, demo, verify)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyperlake",
        description="A crash-safe Parquet data lake of Hyperliquid market data.",
    )
    parser.add_argument("--version", action="version", version=f"hyperlake {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except HyperlakeError as exc:
        print(f"hyperlake {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"hyperlake {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``hyperlake sql ... | head``): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    raise SystemExit(main())
