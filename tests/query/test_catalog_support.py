"""Lakes for the query-side tests, written directly as compaction lays them out.

Partitions are written with the lake's own schema and write options, one file per
(market, interval, UTC date), so every engine reads exactly what ``hyperlake
compact`` would leave. No network, no checkpoints.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hyperlake.lake.compaction import LAKE_WRITE_OPTIONS, utc_date
from hyperlake.lake.paths import LAKE_FILE, LakePaths
from hyperlake.lake.store import Location
from hyperlake.schemas.datasets import CANDLES, FUNDING
from hyperlake.schemas.intervals import DAY_MS, HOUR_MS, next_bucket
from hyperlake.schemas.records import TS

if TYPE_CHECKING:
    from tests.s3_support import S3Server

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
FETCHED = T0 + 400 * DAY_MS


@dataclass
class Bars:
    """Candle columns (lists of equal length) of one (market, interval)."""

    market: str
    interval: str
    t: list[int]
    o: list[float]
    h: list[float]
    low: list[float]
    c: list[float]
    v: list[float]
    q: list[float | None]
    n: list[int]
    x: list[bool]
    source: str = "hyperliquid"
    t_close: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.t_close:
            self.t_close = [next_bucket(t, self.interval) - 1 for t in self.t]

    def rows(self) -> list[dict[str, Any]]:
        """As the ``candles`` view shows them (timestamps as epoch ms)."""
        return [{"market": self.market, "interval": self.interval, "t": t, "t_close": tc,
                 "o": o, "h": h, "l": lo, "c": c, "v": v, "q": q, "n": n, "x": x,
                 "source": self.source, "fetched_at": FETCHED, "date": utc_date(t)}
                for t, tc, o, h, lo, c, v, q, n, x in zip(
                    self.t, self.t_close, self.o, self.h, self.low, self.c, self.v, self.q,
                    self.n, self.x, strict=True)]


def make_bars(market: str, interval: str, opens: Sequence[int], *, seed: int = 0,
              open_last: bool = False, price: float = 100.0) -> Bars:
    """Plausible OHLCV at the given open times; prices of awkward magnitudes."""
    rng = np.random.default_rng(seed)
    count = len(opens)
    close = price * np.exp(np.cumsum(rng.normal(0, 0.01, count)))
    close = np.array([float(f"{x:.6g}") for x in close])
    opens_px = np.concatenate([[close[0]], close[:-1]]) if count else close
    high = np.maximum(opens_px, close) * 1.001
    low = np.minimum(opens_px, close) * 0.999
    volume = rng.random(count) * 10
    quote: list[float | None] = [None if i % 3 == 0 else float(volume[i] * close[i])
                                 for i in range(count)]
    closed = [not (open_last and i == count - 1) for i in range(count)]
    return Bars(market, interval, list(opens), [float(x) for x in opens_px],
                [float(x) for x in high], [float(x) for x in low], [float(x) for x in close],
                [float(x) for x in volume], quote, [int(x) for x in rng.integers(0, 500, count)],
                closed)


def _candle_table(bars: Bars, index: list[int]) -> pa.Table:
    def pick(values: Sequence[Any]) -> list[Any]:
        return [values[i] for i in index]

    return pa.table({
        "t": pa.array(pick(bars.t), TS), "t_close": pa.array(pick(bars.t_close), TS),
        "o": pick(bars.o), "h": pick(bars.h), "l": pick(bars.low), "c": pick(bars.c),
        "v": pick(bars.v), "q": pa.array(pick(bars.q), pa.float64()),
        "n": pa.array(pick(bars.n), pa.int64()), "x": pick(bars.x),
        "source": [bars.source] * len(index),
        "fetched_at": pa.array([FETCHED] * len(index), TS),
    }, schema=CANDLES.lake_schema)


def _by_date(times: Sequence[int]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(times):
        groups.setdefault(utc_date(t), []).append(i)
    return groups


def write_lake_file(root: Location, folder: Location, table: pa.Table) -> None:
    """A partition's file, as compaction writes it (on disk or on the store)."""
    store = LakePaths(root).store
    if isinstance(folder, Path):
        folder.mkdir(parents=True, exist_ok=True)
    store.put_parquet(folder / LAKE_FILE, table, LAKE_WRITE_OPTIONS)


def write_bars(root: Location, bars: Bars, *, keep_order: bool = False) -> None:
    """One partition per UTC date, sorted by t unless ``keep_order``."""
    for date, index in _by_date(bars.t).items():
        table = _candle_table(bars, index)
        if not keep_order:
            table = table.sort_by("t")
        folder = LakePaths(root).partition("candles", bars.market, bars.interval, date)
        write_lake_file(root, folder, table)


@dataclass
class Funding:
    market: str
    time: list[int]
    rate: list[float]
    premium: list[float]

    @property
    def hours(self) -> list[int]:
        return [t // HOUR_MS * HOUR_MS for t in self.time]

    def rows(self) -> list[dict[str, Any]]:
        return [{"market": self.market, "time": t, "funding_hour": h, "fundingRate": r,
                 "premium": p, "source": "hyperliquid", "fetched_at": FETCHED,
                 "date": utc_date(t)}
                for t, h, r, p in zip(self.time, self.hours, self.rate, self.premium,
                                      strict=True)]


def hourly_funding(market: str, start: int, hours: int, *, seed: int = 0,
                   jitter_ms: int = 37) -> Funding:
    rng = np.random.default_rng(seed)
    times = [start + i * HOUR_MS + jitter_ms for i in range(hours)]
    rates = [float(f"{x:.8f}") for x in rng.normal(0, 1e-4, hours)]
    premiums = [math.nan if i % 5 == 0 else float(f"{x:.8f}")
                for i, x in enumerate(rng.normal(0, 1e-3, hours))]
    return Funding(market, times, rates, premiums)


def write_funding(root: Location, funding: Funding) -> None:
    hours = funding.hours
    for date, index in _by_date(funding.time).items():
        table = pa.table({
            "time": pa.array([funding.time[i] for i in index], TS),
            "funding_hour": pa.array([hours[i] for i in index], TS),
            "fundingRate": [funding.rate[i] for i in index],
            "premium": pa.array([funding.premium[i] for i in index], pa.float64()),
            "source": ["hyperliquid"] * len(index),
            "fetched_at": pa.array([FETCHED] * len(index), TS),
        }, schema=FUNDING.lake_schema).sort_by("time")
        write_lake_file(root, LakePaths(root).partition("funding", funding.market, "1h", date),
                        table)


# -- the lake of odd names -------------------------------------------------------------

def odd_names_lake(root: Location) -> tuple[list[Bars], list[Funding]]:
    """Markets and intervals whose folder names are escaped, across several days."""
    minutes = [T0 + DAY_MS - 90 * 60_000 + i * 60_000 for i in range(180)]  # spans midnight
    months = [1_735_689_600_000, 1_738_368_000_000, 1_740_787_200_000]  # 2025-01..03
    bars = [
        make_bars("BTC", "1m", minutes, seed=1, price=97_000.0, open_last=True),
        make_bars("kPEPE", "1m", minutes, seed=2, price=0.00001234),
        make_bars("kPEPE", "1M", months, seed=3, price=0.0000123),
        make_bars("xyz:XYZ100", "1h", [T0 + i * HOUR_MS for i in range(30)], seed=4),
        make_bars("@107", "1d", [T0 + i * DAY_MS for i in range(3)], seed=5, price=25.5),
    ]
    funding = [hourly_funding("BTC", T0, 48, seed=6), hourly_funding("kPEPE", T0, 30, seed=7)]
    for one in bars:
        write_bars(root, one)
    for series in funding:
        write_funding(root, series)
    return bars, funding


# -- comparing ---------------------------------------------------------------------------

def epoch_ms(value: Any) -> Any:
    """datetime → epoch ms; date → ISO text; NaN → the string "NaN"; others unchanged."""
    if hasattr(value, "timestamp") and hasattr(value, "tzinfo"):
        return round(value.timestamp() * 1000)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def comparable(table: pa.Table, order: Sequence[str]) -> list[dict[str, Any]]:
    """Rows sorted by ``order``, values made comparable with ``Bars.rows``."""
    ordered = table.sort_by([(name, "ascending") for name in order])
    return [{k: epoch_ms(v) for k, v in row.items()} for row in ordered.to_pylist()]


def expected(rows: list[dict[str, Any]], order: Sequence[str]) -> list[dict[str, Any]]:
    return sorted(({k: epoch_ms(v) for k, v in row.items()} for row in rows),
                  key=lambda row: tuple(row[name] for name in order))


def files_read(explain_analyze: str) -> list[int]:
    """``Total Files Read: N`` of each table scan in DuckDB's EXPLAIN ANALYZE text."""
    return [int(n) for n in re.findall(r"Total Files Read: (\d+)", explain_analyze)]


def polars_sources(plan: str) -> int:
    """How many files a polars plan's Parquet SCAN names (``a, b, ... N other sources``)."""
    match = re.search(r"Parquet SCAN \[(.*)\]", plan)
    assert match, plan
    listed = match.group(1)
    more = re.search(r"\.\.\. (\d+) other sources?", listed)
    named = len([p for p in listed.split(", ") if not p.startswith("...")])
    return named + (int(more.group(1)) if more else 0)


def sorted_column(table: pa.Table, name: str) -> bool:
    values = table.column(name)
    return len(values) < 2 or bool(pc.all(pc.greater(values[1:], values[:-1])).as_py())


# -- lake roots of a module's fixtures ------------------------------------------------------

def module_lake(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                name: str) -> Location:
    """A lake root for a module's fixture: a folder, or a prefix of the loopback S3."""
    if request.param == "local":
        folder: Path = tmp_path_factory.mktemp(name)
        return folder
    server: S3Server = request.getfixturevalue("s3_server")
    lake: Location = server.lake(name)
    return lake


OddLake = tuple[Location, list[Bars], list[Funding]]
