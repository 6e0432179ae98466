"""``import hyperlake.cli`` stays light: no data or server library at start-up.

Every ``hyperlake --help`` imports the CLI, and so does every worker process the
Dwellir extractor spawns (multiprocessing re-imports the console script). The
commands import what they run inside ``run``; this checks that nothing heavy leaks
back to module level.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = {"polars", "duckdb", "pyarrow", "numpy", "granian", "httpx", "matplotlib", "dask",
         "distributed"}
ROOT = Path(__file__).resolve().parents[2]


def imported_modules(statement: str) -> set[str]:
    """Every module ``python -X importtime -c statement`` imports, by dotted name."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", statement],
                          capture_output=True, text=True, cwd=ROOT, check=True, timeout=60)
    # e.g. "import time:       854 |       3240 |   argparse"
    return {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}


def test_importing_the_cli_loads_no_heavy_library() -> None:
    modules = imported_modules("import hyperlake.cli")
    assert "hyperlake.cli" in modules
    assert {"hyperlake.commands.candles", "hyperlake.commands.sql",
            "hyperlake.commands.plot"} <= modules
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == [], f"import hyperlake.cli pulls in {heavy}"
