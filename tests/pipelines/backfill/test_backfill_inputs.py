"""Bad input to ``hyperlake backfill`` is one line and exit 2, before any request or
file; the plan's chunks and the task graph; a task under a revoked grant stops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hyperlake.lake.lock import GrantRevoked
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.pipelines.backfill.plan import chunk_cuts, chunks, month_ranges
from hyperlake.pipelines.backfill.tasks import CandleExtract, TaskContext
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.schemas.intervals import DAY_MS
from hyperlake.schemas.times import parse_instant
from tests.conftest import NOWHERE
from tests.pipelines.update_support import write_config

CONFIG = '''\
[markets]
list = ["BTC"]
[candles.hydromancer]
intervals = ["1h"]
start = "2026-03-01"
'''


def ms(text: str) -> int:
    return parse_instant(text, "test")


def backfill(tmp_path: Path, *args: str, pre: str = "") -> subprocess.CompletedProcess[str]:
    config = write_config(tmp_path, CONFIG)
    code = (f"import sys; {pre or 'pass'}; from hyperlake.cli import main; "
            f"sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, "backfill", "--config", str(config),
                           "--lake", str(tmp_path / "lake"), *args],
                          capture_output=True, text=True, timeout=60, check=False,
                          env=_env())


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "HYPERLAKE_NOW": "2026-03-31T00:00:00Z",
            "HYPERLAKE_HYDROMANCER_KEY": "hm", "HYPERLAKE_HYPERLIQUID_URL": NOWHERE,
            "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}


@pytest.mark.parametrize(("args", "pre", "expected"), [
    (["--stages", "extract,squash"], "", "'squash' is no stage"),
    (["--stages", ","], "", "nothing is no stage"),
    (["--start", "2026-03-20", "--end", "2026-03-10"], "", "must be before --end"),
    (["--end", "2027-01-01"], "", "is in the future"),
    (["--start", "yesterday"], "", "is not an ISO-8601 time"),
    (["--prefer", "binance"], "", "unknown source 'binance'"),
    (["--scheduler", "tcp://127.0.0.1:9"], "", "cannot reach the Dask scheduler"),
    (["--scheduler", "tcp://127.0.0.1:9"], "sys.modules['distributed'] = None",
     "pip install 'hyperlake[dask]'"),
])
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(
        tmp_path: Path, args: list[str], pre: str, expected: str) -> None:
    done = backfill(tmp_path, *args, pre=pre)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hyperlake backfill: error: "), lines
    assert expected in lines[0]
    assert not (tmp_path / "lake").exists()


def test_a_missing_configuration_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "hyperlake.cli", "backfill", "--config",
                           str(tmp_path / "nope.toml")], capture_output=True, text=True,
                          timeout=60, check=False, env=_env())
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "no such file" in done.stderr


def test_chunks_are_calendar_months_floored_to_the_buckets() -> None:
    want = Span(ms("2026-01-15T00:00:00Z"), ms("2026-03-31T00:00:00Z"))
    assert chunk_cuts(want, "1h") == [ms("2026-02-01T00:00:00Z"), ms("2026-03-01T00:00:00Z")]
    # 2026-02-01 is a Sunday: the week bucket that holds it opens on Monday 01-26
    assert chunk_cuts(want, "1w") == [ms("2026-01-26T00:00:00Z"), ms("2026-02-23T00:00:00Z")]
    assert chunk_cuts(Span(ms("2026-03-01T00:00:00Z"), ms("2026-03-04T12:00:00Z")), "1s") == \
        [ms("2026-03-02T00:00:00Z"), ms("2026-03-03T00:00:00Z"), ms("2026-03-04T00:00:00Z")]
    pieces = chunks(want, "15m")
    assert RangeSet(pieces) == RangeSet([want]) and len(pieces) == 3
    assert chunks(Span(0, DAY_MS), "1m") == [Span(0, DAY_MS)]


def test_month_ranges_cover_the_days_given() -> None:
    jan31, feb1 = ms("2026-01-31T00:00:00Z") // DAY_MS, ms("2026-02-01T00:00:00Z") // DAY_MS
    ranges = month_ranges([jan31, feb1, feb1 + 3])
    assert ranges == [(ms("2026-01-01T00:00:00Z") // DAY_MS, feb1),
                      (feb1, ms("2026-03-01T00:00:00Z") // DAY_MS)]


def test_an_extract_under_a_revoked_grant_stops_before_asking(tmp_path: Path) -> None:
    paths = LakePaths(tmp_path)
    with paths.writer_lock() as lock:
        grant = lock.grant()
    key = SeriesKey("candles", "hydromancer", "BTC", "1h")
    span = Span(ms("2026-03-01T00:00:00Z"), ms("2026-03-02T00:00:00Z"))
    task = CandleExtract(name="x", key=key, want=span, missing=RangeSet([span]))
    ctx = TaskContext(tmp_path, grant, SourceSettings(hydromancer_url=NOWHERE,
                                                      hydromancer_key="hm"))
    with paths.writer_lock(), pytest.raises(GrantRevoked):
        task.run(ctx, [])


def test_settings_never_show_a_key() -> None:
    settings = SourceSettings(hydromancer_key="hm-secret", dwellir_key="dw-secret")
    assert "secret" not in repr(settings)
