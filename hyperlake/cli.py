"""The ``hyperlake`` command: one entry point, one module per subcommand.

Importing this module must stay cheap: every ``--help`` pays for it, and so does every
worker process the Dwellir extractor spawns (they re-import the console script). A
command module declares its arguments in ``register`` from light constants only and
imports polars, duckdb, pyarrow, httpx, the pipelines and the emulator server inside
the functions that run it (``tests/commands/test_cli_startup.py`` checks).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
from collections.abc import Sequence

from hyperlake import __version__
from hyperlake.commands import (
    backfill,
    candles,
    compact,
    demo,
    emulator,
    export,
    funding,
    init,
    plot,
    sql,
    status,
    stream,
    update,
    verify,
)
from hyperlake.errors import HyperlakeError

COMMANDS = (candles, funding, update, backfill, status, init, stream, compact, sql, export,
            plot, emulator, demo, verify)
#: Exit statuses of a run stopped from outside (128 + the signal, as shells report).
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


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


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C (workers stopped, locks released)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


_ADVICE = {
    errno.ENOSPC: "free some space and run the same command again (what was committed stays)",
    errno.EDQUOT: "free some space and run the same command again (what was committed stays)",
    errno.EROFS: "the file system is read-only; choose a writable --lake or --output",
    errno.EACCES: "no permission; choose a folder you can write, or fix its permissions",
    errno.EPERM: "not permitted; choose a folder you can write",
}


def describe_os_error(exc: OSError) -> str:
    """One line: what the system said, on which file, and what to do."""
    what = exc.strerror or str(exc)
    where = f" ({exc.filename})" if exc.filename else ""
    advice = _ADVICE.get(exc.errno or 0)
    return f"{what}{where}" + (f"; {advice}" if advice else "")


def one_line(text: str) -> str:
    """``text`` with every character a terminal would not print as one (a newline or a
    vertical tab in a path the user typed, a lone surrogate from undecodable bytes)
    escaped: an error stays one line, whatever it quotes."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        code: int = args.run(args)
    except HyperlakeError as exc:
        print(f"hyperlake {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"hyperlake {args.command}: interrupted; what was committed stays, run the same "
              "command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print(f"hyperlake {args.command}: terminated (SIGTERM); what was committed stays, run "
              "the same command again to resume", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:
        # The reader went away (``hyperlake sql ... | head``): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        # The system refused a file operation (no space, read-only, no permission):
        # what was committed stays, and the message says which file and why.
        print(f"hyperlake {args.command}: error: {one_line(describe_os_error(exc))}",
              file=sys.stderr)
        return 1
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
