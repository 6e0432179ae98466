"""Error types that carry the decision the caller must make.

``UserError``: bad input or configuration; nothing was requested or written, the
message names the field and says what to do. The CLI prints it on one line and exits 2.
"""

from __future__ import annotations


class HyperlakeError(Exception):
    """Base of every error hyperlake raises on purpose."""

    exit_code = 1


class UserError(HyperlakeError):
    """Bad input: fix the named field and run again. Nothing was touched."""

    exit_code = 2
