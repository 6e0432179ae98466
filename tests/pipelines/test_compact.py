"""``hyperlake compact`` as a process: SIGKILLed at random instants, blocked by the lake
lock, odd options. The lake a killed-then-resumed run leaves must be byte-identical to
the lake of an uninterrupted run, and a checkpoint part may vanish only once its rows
are in the lake.

The template lake (2 markets x 30 days of 1m candles from three sources with
overlapping spans, plus hourly funding) is built once, with ``ShardWriter`` commits
as extractors make them, and copied for each run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from hyperlake.lake.checkpoints import Series, ShardWriter
from hyperlake.lake.paths import COVERED, LAKE_FILE, PART, LakePaths, SeriesKey
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.schemas.candles import CANDLE_SCHEMA
from hyperlake.schemas.funding import FundingRow, funding_table
from hyperlake.schemas.intervals import DAY_MS, HOUR_MS, MINUTE_MS
from hyperlake.schemas.records import TS
from hyperlake.schemas.vocabulary import is_dataset
from tests.conftest import on_disk
from tests.lake.lock_support import held_elsewhere

T0 = 1_772_323_200_000  # 2026-03-01T00:00:00Z
DAYS = 30
FETCH = T0 + 40 * DAY_MS
MARKETS = ("BTC", "ETH")
CLI = (sys.executable, "-m", "hyperlake.cli", "compact")


# -- the template lake -----------------------------------------------------------------

def minute_candles(market: str, source: str, start: int, end: int, *, fetched: int,
                   seed: int, open_from: int | None = None) -> pa.Table:
    """1m candles over [start, end); open (x=False) from ``open_from`` on."""
    rng = np.random.default_rng(seed)
    t = np.arange(start, end, MINUTE_MS, dtype=np.int64)
    count = len(t)
    close = np.round(100 + np.cumsum(rng.normal(0, 0.05, count)), 3)
    return pa.table({
        "market": pa.array([market] * count), "interval": pa.array(["1m"] * count),
        "t": pa.array(t, TS), "t_close": pa.array(t + MINUTE_MS - 1, TS),
        "o": close, "h": close + 0.1, "l": close - 0.1, "c": close,
        "v": np.round(rng.random(count), 3),
        "q": pa.array(None if source == "hyperliquid" else float(x) for x in rng.random(count)),
        "n": rng.integers(0, 9, count),
        "x": t < (end if open_from is None else open_from),
        "source": pa.array([source] * count), "fetched_at": pa.array(np.full(count, fetched), TS),
    }, schema=CANDLE_SCHEMA)


@dataclass(frozen=True)
class Template:
    root: Path
    parts: dict[str, Span]  # relative path of each committed part → its span


def commit_spans(lake: Path, key: SeriesKey, job: Span, spans: list[Span], shard: str,
                 make: Callable[[Span], pa.Table]) -> dict[str, Span]:
    series = Series(LakePaths(lake), key)
    writer = ShardWriter(series, series.job_folder(job) / shard)
    return {str(on_disk(writer.commit(span, make(span), [])).relative_to(lake)): span
            for span in spans}


def chop(start: int, end: int, step: int) -> list[Span]:
    return [Span(a, min(a + step, end)) for a in range(start, end, step)]


def candles_for(market: str, source: str, *, fetched: int, seed: int,
                open_from: int | None = None) -> Callable[[Span], pa.Table]:
    def make(span: Span) -> pa.Table:
        return minute_candles(market, source, span.start, span.end, fetched=fetched,
                              seed=seed + span.start, open_from=open_from)
    return make


def funding_for(market: str, fetched: int) -> Callable[[Span], pa.Table]:
    def make(span: Span) -> pa.Table:
        return funding_table(market, "hyperliquid", [
            FundingRow(h + 3, h, 1e-5 * ((h // HOUR_MS) % 7 - 3) + fetched % 10 * 1e-7, 1e-4,
                       fetched)
            for h in range(span.start, span.end, HOUR_MS)])
    return make


def build_template(lake: Path) -> Template:
    parts: dict[str, Span] = {}
    end = T0 + DAYS * DAY_MS
    for m, market in enumerate(MARKETS):
        def key(source: str, market: str = market) -> SeriesKey:
            return SeriesKey("candles", source, market, "1m")

        # Dwellir: the whole month, two shards of 2.5-day parts
        job = Span(T0, end)
        for shard, (a, b) in enumerate(((T0, T0 + 15 * DAY_MS), (T0 + 15 * DAY_MS, end))):
            parts |= commit_spans(lake, key("dwellir"), job, chop(a, b, 5 * DAY_MS // 2),
                                  f"shard-{shard:03d}",
                                  candles_for(market, "dwellir", fetched=FETCH, seed=m))
        # Hydromancer: days 10-25, fetched later, one-day parts
        job = Span(T0 + 10 * DAY_MS, T0 + 25 * DAY_MS)
        parts |= commit_spans(lake, key("hydromancer"), job, chop(job.start, job.end, DAY_MS),
                              "shard-000",
                              candles_for(market, "hydromancer", fetched=FETCH + 1, seed=m + 10))
        # Hyperliquid: the last 4 days in 5000-candle parts, fetched last; its final
        # 2 hours are still open, so Dwellir's closed candles win there
        job = Span(end - 4 * DAY_MS, end)
        parts |= commit_spans(lake, key("hyperliquid"), job,
                              chop(job.start, job.end, 5000 * MINUTE_MS), "shard-000",
                              candles_for(market, "hyperliquid", fetched=FETCH + 2, seed=m + 20,
                                          open_from=end - 2 * HOUR_MS))
        # Funding: 336-hour windows, and a later re-fetch of days 5-8
        fkey = SeriesKey("funding", "hyperliquid", market, "1h")
        parts |= commit_spans(lake, fkey, Span(T0, end), chop(T0, end, 336 * HOUR_MS), "coin",
                              funding_for(market, FETCH))
        again = Span(T0 + 5 * DAY_MS, T0 + 8 * DAY_MS)
        parts |= commit_spans(lake, fkey, again, [again], "coin", funding_for(market, FETCH + 1))
    return Template(lake, parts)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return build_template(tmp_path_factory.mktemp("template") / "lake")


@dataclass(frozen=True)
class Reference:
    root: Path
    seconds: float  # wall time of an uninterrupted ``hyperlake compact``
    work_seconds: float  # its own timer: from holding the lock to done
    groups: dict[tuple[str, str, str], pa.Table] = field(default_factory=dict)

    def group(self, dataset: str, market: str, interval: str) -> pa.Table:
        key = (dataset, market, interval)
        if key not in self.groups:
            self.groups[key] = group_table(self.root, dataset, market, interval)
        return self.groups[key]


@pytest.fixture(scope="module")
def reference(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    lake = copy_lake(template, tmp_path_factory.mktemp("reference"))
    started = time.monotonic()
    result = run_cli(lake, "--json")
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    work = float(json.loads(result.stdout)["seconds"])
    print(f"uninterrupted hyperlake compact: {seconds:.2f}s, {work:.2f}s of work")
    return Reference(lake, seconds, work)


def copy_lake(template: Template, folder: Path) -> Path:
    lake = folder / "lake"
    shutil.copytree(template.root, lake)
    return lake


# -- running and reading ---------------------------------------------------------------

def run_cli(lake: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--lake", str(lake), *args], capture_output=True, text=True,
                          timeout=120)


def start_cli(lake: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*CLI, "--lake", str(lake)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_group(proc: subprocess.Popen[bytes]) -> bool:
    """SIGKILL the run's process group; whether it was still running."""
    running = proc.poll() is None
    if running:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return running


def start_working(lake: Path) -> subprocess.Popen[bytes]:
    """Start ``hyperlake compact`` and return once it holds the lake lock (its imports
    done, its work begun) or has exited."""
    proc = start_cli(lake)
    lock, holder = on_disk(LakePaths(lake).lock_file), f"pid {proc.pid}:".encode()
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if lock.read_bytes().startswith(holder):
                break
        time.sleep(0.002)
    return proc


def run_killed_after(lake: Path, delay: float) -> bool:
    """SIGKILL ``hyperlake compact`` ``delay`` seconds into its work."""
    proc = start_working(lake)
    time.sleep(delay)
    return kill_group(proc)


def data_files(lake: Path) -> dict[str, Path]:
    return {str(p.relative_to(lake)): p for dataset in ("candles", "funding")
            for p in sorted((lake / dataset).glob(f"market=*/interval=*/date=*/{LAKE_FILE}"))}


def file_hashes(lake: Path) -> dict[str, str]:
    """sha256 of every file under candles/ and funding/ (whatever its name)."""
    return {str(p.relative_to(lake)): hashlib.sha256(p.read_bytes()).hexdigest()
            for dataset in ("candles", "funding") for p in sorted((lake / dataset).rglob("*"))
            if p.is_file()}


def group_table(lake: Path, dataset: str, market: str, interval: str) -> pa.Table:
    """The lake rows of one (dataset, market, interval), read file by file."""
    assert is_dataset(dataset)
    folder = on_disk(LakePaths(lake).partition(dataset, market, interval, "x").parent)
    files = sorted(folder.glob(f"date=*/{LAKE_FILE}"))
    if not files:
        return pa.table({})
    return pa.concat_tables([pq.read_table(p) for p in files])


def remaining_parts(lake: Path) -> set[str]:
    return {str(p.relative_to(lake)) for p in (lake / "_checkpoints").rglob("part-*.parquet")}


def part_group(relative: str) -> tuple[str, str, str]:
    """(dataset, market, interval) of a part's path under _checkpoints/."""
    folders = Path(relative).parts
    return folders[1], folders[3].removeprefix("market="), folders[4].removeprefix("interval=")


def key_column(dataset: str) -> str:
    return "t" if dataset == "candles" else "time"


def assert_gone_parts_are_in_the_lake(lake: Path, template: Template,
                                      reference: Reference) -> int:
    """Every part missing from ``lake`` has its keys in the lake, holding the rows the
    uninterrupted run holds for them. Returns how many parts are gone."""
    gone = sorted(set(template.parts) - remaining_parts(lake))
    by_group: dict[tuple[str, str, str], list[str]] = {}
    for relative in gone:
        by_group.setdefault(part_group(relative), []).append(relative)
    for (dataset, market, interval), relatives in by_group.items():
        key = key_column(dataset)
        have = group_table(lake, dataset, market, interval)
        want = reference.group(dataset, market, interval)
        for relative in relatives:
            keys = pq.read_table(template.root / relative, columns=[key]).column(key)
            got, expected = (t.filter(pc.is_in(t.column(key), value_set=keys)) if t.num_rows
                             else t for t in (have, want))
            assert got.num_rows == expected.num_rows == len(pc.unique(keys)), \
                f"{relative} is gone but the lake lacks some of its keys"
            assert got.equals(expected), f"{relative} is gone but the lake lacks its rows"
    return len(gone)


def coverage_spans(lake: Path) -> dict[str, RangeSet]:
    out: dict[str, list[Span]] = {}
    root = lake / "_state/coverage"
    for marker in root.rglob("covered-*"):
        span = COVERED.parse(marker.name)
        assert span is not None, f"stray file in coverage: {marker}"
        series = str(marker.parent.relative_to(root))
        out.setdefault(series, []).append(span)
    return {series: RangeSet(spans) for series, spans in out.items()}


def committed_spans(template: Template) -> dict[str, RangeSet]:
    out: dict[str, list[Span]] = {}
    for relative in template.parts:
        span = PART.parse(Path(relative).name)
        assert span is not None
        folders = Path(relative).parts  # _checkpoints/<dataset>/<source>/market/interval/…
        out.setdefault("/".join(folders[1:5]), []).append(span)
    return {series: RangeSet(spans) for series, spans in out.items()}


def temporaries(lake: Path, *folders: str) -> list[Path]:
    return [p for folder in folders for p in (lake / folder).rglob(".tmp-*")]


# -- crash safety ----------------------------------------------------------------------

def test_reference_run_is_complete(template: Template, reference: Reference) -> None:
    lake = reference.root
    assert remaining_parts(lake) == set()
    assert len(data_files(lake)) == 2 * len(MARKETS) * DAYS
    for market in MARKETS:
        candles = group_table(lake, "candles", market, "1m")
        t = candles.column("t").cast(pa.int64()).to_numpy()
        assert np.array_equal(t, np.arange(T0, T0 + DAYS * DAY_MS, MINUTE_MS))
        assert pc.all(candles.column("x")).as_py()
        sources = pc.value_counts(candles.column("source")).to_pylist()
        # Hydromancer's later fetch wins on days 10-25, Hyperliquid's latest on 26-30
        # except for its last 2 hours, still open then: there Dwellir's closed candles win
        assert {d["values"]: d["counts"] for d in sources} == {
            "dwellir": 11 * 1440 + 120, "hydromancer": 15 * 1440, "hyperliquid": 4 * 1440 - 120}
        funding = group_table(lake, "funding", market, "1h")
        assert funding.num_rows == DAYS * 24
    assert coverage_spans(lake) == committed_spans(template)


def test_killed_at_random_instants_then_resumed_equals_an_uninterrupted_run(
        template: Template, reference: Reference, tmp_path: Path) -> None:
    rng = random.Random(20260301)
    lake = copy_lake(template, tmp_path)
    interrupted = 0
    for _ in range(5):
        was_running = run_killed_after(lake, rng.uniform(0.05, 1.0) * reference.work_seconds)
        assert_gone_parts_are_in_the_lake(lake, template, reference)
        if was_running and remaining_parts(lake) and data_files(lake):
            interrupted += 1
    assert interrupted >= 1, "no kill landed inside the compaction: nothing was tested"

    final = run_cli(lake, "--json")
    assert final.returncode == 0, final.stderr
    assert remaining_parts(lake) == set()
    assert temporaries(lake, "candles", "funding", "_checkpoints") == []
    want = data_files(reference.root)
    got = data_files(lake)
    assert sorted(got) == sorted(want)
    for relative, path in got.items():
        assert pq.read_table(path).equals(pq.read_table(want[relative])), relative
    assert file_hashes(lake) == file_hashes(reference.root)
    assert coverage_spans(lake) == committed_spans(template)


def test_parts_are_deleted_only_after_their_rows_are_swapped_in(
        template: Template, reference: Reference, tmp_path: Path) -> None:
    """Kill at random instants, half of them just after deletions start (the first
    part of the first group disappears); no hook inside the process."""
    rng = random.Random(107)
    first = min(p for p in template.parts if p.startswith("_checkpoints/candles/"))
    partial = 0
    for attempt in range(4):
        lake = copy_lake(template, tmp_path / f"run-{attempt}")
        proc = start_working(lake)
        if attempt % 2:
            time.sleep(rng.uniform(0.3, 1.0) * reference.work_seconds)
        else:
            deadline = time.monotonic() + 4 * reference.seconds + 10
            while (lake / first).exists() and proc.poll() is None:
                assert time.monotonic() < deadline, "compaction never deleted a part"
                time.sleep(0.001)
            time.sleep(rng.uniform(0.0, 0.1))
        kill_group(proc)
        gone = assert_gone_parts_are_in_the_lake(lake, template, reference)
        if 0 < gone < len(template.parts):
            partial += 1
    assert partial >= 1, "no kill left some parts deleted and others not"


# -- crash injection: kill the process just before a given rename ----------------------

KILL_BEFORE_RENAME = """
import os, signal, sys
from pathlib import Path
prefix, lake = sys.argv[1], sys.argv[2]
real_replace = os.replace
def replace(src, dst, *args, **kwargs):
    if Path(dst).name.startswith(prefix):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)
os.replace = replace
from hyperlake.cli import main
sys.exit(main(["compact", "--lake", lake]))
"""


def run_killed_before_rename(lake: Path, prefix: str) -> int:
    """Run ``hyperlake compact``, SIGKILLed when it first renames onto ``prefix…``."""
    done = subprocess.run([sys.executable, "-c", KILL_BEFORE_RENAME, prefix, str(lake)],
                          capture_output=True, text=True, timeout=120)
    return done.returncode


def one_day_lake(lake: Path, fetched: int, seed: int) -> None:
    span = Span(T0, T0 + DAY_MS)
    commit_spans(lake, SeriesKey("candles", "dwellir", "BTC", "1m"), span, [span],
                 f"shard-{seed:03d}", candles_for("BTC", "dwellir", fetched=fetched, seed=seed))


def test_a_temporary_left_by_a_kill_before_the_swap_is_not_read(tmp_path: Path) -> None:
    from hyperlake.query.catalog import connect

    lake = tmp_path / "lake"
    one_day_lake(lake, FETCH, seed=1)
    assert run_cli(lake).returncode == 0
    committed = group_table(lake, "candles", "BTC", "1m")
    one_day_lake(lake, FETCH + 1, seed=2)  # a later fetch: the partition will change

    assert run_killed_before_rename(lake, LAKE_FILE) == -signal.SIGKILL
    assert len(temporaries(lake, "candles")) == 1  # complete, fsynced, not swapped
    with connect(lake) as con:
        seen = con.execute("SELECT count(*), count(DISTINCT t), sum(c) FROM candles").fetchone()
    assert seen == (1440, 1440, pytest.approx(pc.sum(committed.column("c")).as_py()))
    assert group_table(lake, "candles", "BTC", "1m").equals(committed)

    assert run_cli(lake).returncode == 0
    assert temporaries(lake, "candles") == []
    assert group_table(lake, "candles", "BTC", "1m").column("fetched_at")[0].value == FETCH + 1


def test_a_kill_while_recording_coverage_leaves_no_temporary_behind(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    one_day_lake(lake, FETCH, seed=1)
    assert run_killed_before_rename(lake, "covered-") == -signal.SIGKILL
    assert len(temporaries(lake, "_state")) == 1
    done = run_cli(lake)
    assert done.returncode == 0, done.stderr
    assert remaining_parts(lake) == set()
    assert coverage_spans(lake)  # the marker itself was written by the second run
    assert temporaries(lake, "_state") == []


# -- the lock --------------------------------------------------------------------------



def snapshot(lake: Path) -> dict[str, tuple[str, int, int]]:
    """Every file and folder: content hash, mtime and inode."""
    out = {}
    for p in sorted(lake.rglob("*")):
        stat = p.stat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        out[str(p.relative_to(lake))] = (digest, stat.st_mtime_ns, stat.st_ino)
    return out


@dataclass
class Holder:
    lake: Path
    process: subprocess.Popen[str]

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def lock_holder(tmp_path: Path) -> Iterator[Holder]:
    """A lake with a checkpoint, its lock held by another process until released."""
    lake = tmp_path / "lake"
    one_day_lake(lake, FETCH, seed=1)
    with held_elsewhere(on_disk(LakePaths(lake).lock_file)) as process:
        yield Holder(lake, process)


def test_a_held_lake_lock_exits_3_with_one_line_touching_nothing(lock_holder: Holder) -> None:
    lake = lock_holder.lake
    before = snapshot(lake)
    done = run_cli(lake)
    assert done.returncode == 3
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("hyperlake compact: error: another hyperlake run holds the lake")
    assert f"pid {lock_holder.process.pid}" in lines[0]
    assert snapshot(lake) == before

    lock_holder.release()  # the holder is gone: the same command now compacts
    done = run_cli(lake)
    assert done.returncode == 0, done.stderr
    assert remaining_parts(lake) == set() and len(data_files(lake)) == 1


# -- options ---------------------------------------------------------------------------

def test_prefer_on_the_command_line(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    span = Span(T0, T0 + HOUR_MS)
    for source, fetched in (("dwellir", FETCH), ("hydromancer", FETCH + 1)):
        commit_spans(lake, SeriesKey("candles", source, "BTC", "1m"), span, [span],
                     "shard-000", candles_for("BTC", source, fetched=fetched, seed=3))
    aside = tmp_path / "aside"
    shutil.copytree(lake / "_checkpoints", aside)
    done = run_cli(lake, "--prefer", "dwellir,hydromancer", "--json")
    assert done.returncode == 0, done.stderr
    assert '"parts_consumed":2' in done.stdout and '"partitions_written":1' in done.stdout
    sources = group_table(lake, "candles", "BTC", "1m").column("source").unique().to_pylist()
    assert sources == ["dwellir"]

    shutil.rmtree(lake)
    shutil.copytree(aside, lake / "_checkpoints")
    assert run_cli(lake).returncode == 0
    sources = group_table(lake, "candles", "BTC", "1m").column("source").unique().to_pylist()
    assert sources == ["hydromancer"]  # without --prefer the later fetch wins


def test_an_unknown_prefer_source_exits_2_touching_nothing(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    one_day_lake(lake, FETCH, seed=1)
    before = snapshot(lake)
    done = run_cli(lake, "--prefer", "dwellir,binance")
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "'binance'" in done.stderr
    assert snapshot(lake) == before


def test_dataset_option_compacts_only_that_dataset(template: Template, tmp_path: Path) -> None:
    lake = copy_lake(template, tmp_path)
    done = run_cli(lake, "--dataset", "funding")
    assert done.returncode == 0, done.stderr
    assert not (lake / "candles").exists()
    assert len(data_files(lake)) == len(MARKETS) * DAYS
    assert all(p.startswith("_checkpoints/candles/") for p in remaining_parts(lake))
