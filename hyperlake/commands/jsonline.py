"""``--json``: a run's summary as one line (no terminal library needed to print it)."""

from __future__ import annotations

import json


def summary_line(**fields: object) -> str:
    """The run's summary as one line of JSON, keys in the order given (for ``--json``).

    Values that JSON cannot hold (paths, dates) are written as their ``str``.
    """
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"), default=str,
                      allow_nan=False)
