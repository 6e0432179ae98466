"""The engines' errors as one line, and a lake file that cannot be read.

A lake file can be unreadable: truncated or damaged by a disk fault, a copy cut short,
a hand edit. The views open a file only when a query needs it (their columns come from
a schema file, see ``hyperlake.query.catalog``) and an export opens one partition at a
time, so only what must read that file fails, and it fails here: one line naming the
file, pointing at ``hyperlake verify`` (which checks the whole lake), exit status 1. The
read side moves nothing: it only reads.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from hyperlake.errors import HyperlakeError
from hyperlake.lake.store import Location, ObjectPath

_QUOTED_PARQUET = re.compile(r"""['"]([^'"]+\.parquet)['"]""")
#: What DuckDB's Parquet reader says, without a file name, of a damaged page or footer.
_DAMAGE = re.compile(r"TProtocolException|don't know what type|corrupt|decompress|"
                     r"invalid data|thrift", re.IGNORECASE)
VERIFY_HINT = "it may be damaged: run `hyperlake verify` to check the lake"


class UnreadableLakeFile(HyperlakeError):
    """A file the command must read cannot be read; nothing was written."""

    exit_code = 1


def one_line(error: Exception) -> str:
    """An engine's message without DuckDB's ``LINE 1: ... ^^^`` excerpt, on one line."""
    text = str(error).split("\n\nLINE ")[0]
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def unreadable(path: Location, error: Exception) -> UnreadableLakeFile:
    reason = error.strerror if isinstance(error, OSError) and error.strerror else one_line(error)
    return UnreadableLakeFile(f"cannot read lake file {path} ({reason}); {VERIFY_HINT}")


def _within(name: str, root: Location) -> bool:
    if isinstance(root, ObjectPath):
        return name.startswith(f"{root}/")
    return Path(name).is_relative_to(root)


def from_duckdb(error: duckdb.Error, root: Location) -> UnreadableLakeFile | None:
    """The unreadable lake file behind a DuckDB error, or None when the error is another
    (a typo in the SQL, a file of the user's own)."""
    text = one_line(error)
    for match in _QUOTED_PARQUET.finditer(text):
        if _within(match[1], root):
            reason = " ".join(text.replace(match[0], "").split())
            return UnreadableLakeFile(f"cannot read lake file {match[1]} ({reason}); "
                                      f"{VERIFY_HINT}")
    if _DAMAGE.search(text):  # the Parquet reader's own words name no file
        return UnreadableLakeFile(f"a file the query reads cannot be read ({text}); if it "
                                  "is a lake file, `hyperlake verify` names it")
    return None
