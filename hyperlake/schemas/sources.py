"""Names of the data sources and their option values: plain constants, no imports.

They live here, not beside the code that uses them, so that ``hyperlake.cli`` can
declare every command's choices without importing pyarrow, httpx or the pipelines.
"""

from __future__ import annotations

SOURCES = ("hyperliquid", "hydromancer", "dwellir")
#: Dwellir plan ceilings, requests per second, in the order ``--plan`` lists them.
DWELLIR_PLANS = {"free": 20, "developer": 100, "growth": 500, "scale": 5000}
#: What a funding window that keeps answering HTTP 500 becomes (``--on-500``).
ON_500_MODES = ("empty", "split", "skip-coin")
