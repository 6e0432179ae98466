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
         "distributed", "obstore", "fsspec", "boto3"}
#: The s3 extra's libraries and the lake's modules that use them: for an s3:// lake only.
OBJECT_STORE = {"obstore", "fsspec", "boto3", "botocore", "hyperlake.lake.s3",
                "hyperlake.lake.objectfs", "hyperlake.lake.lease"}
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


def test_a_local_lake_never_loads_the_object_store_libraries(tmp_path: Path) -> None:
    """Writing, compacting and querying a lake on disk: not one module of the s3 extra."""
    lake = tmp_path / "lake"
    statement = (
        "from pathlib import Path\n"
        "from hyperlake.lake.checkpoints import Series, ShardWriter\n"
        "from hyperlake.lake.paths import LakePaths, SeriesKey\n"
        "from hyperlake.lake.ranges import Span\n"
        "from hyperlake.pipelines.compact import CompactJob, run_compact\n"
        "from hyperlake.query.catalog import connect\n"
        "from hyperlake.schemas.candles import CandleRow, candle_table\n"
        f"lake = Path({str(lake)!r})\n"
        "series = Series(LakePaths(lake), SeriesKey('candles', 'dwellir', 'BTC', '1h'))\n"
        "row = CandleRow(0, 3_599_999, 1.0, 2.0, 0.5, 1.5, 3.0, None, 4, True, 7_200_000)\n"
        "ShardWriter(series, series.job_folder(Span(0, 3_600_000)) / 's').commit(\n"
        "    Span(0, 3_600_000), candle_table('BTC', '1h', 'dwellir', [row]), [])\n"
        "run_compact(CompactJob(lake=lake))\n"
        "assert connect(lake).sql('SELECT count(*) FROM candles').fetchall() == [(1,)]\n")
    modules = imported_modules(statement)
    assert "hyperlake.query.catalog" in modules
    loaded = sorted(m for m in modules
                    if m in OBJECT_STORE or m.split(".")[0] in OBJECT_STORE)
    assert loaded == [], f"a local lake loaded {loaded}"
