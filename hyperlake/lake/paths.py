"""Every path of the lake is spelled here, and only here.

Layout under the lake root (default ``./data``):

    candles/market=BTC/interval=1m/date=2026-03-30/part-0.parquet
    funding/market=BTC/interval=1h/date=2026-03-30/part-0.parquet
    _checkpoints/<dataset>/<source>/market=…/interval=…/job-<start>-<end>/…
    _state/…   gap ledger, coverage, universe snapshots, the writer lock

Partition values are URL-encoded (``:`` → ``%3A``, ``@107`` → ``%40107``); DuckDB,
polars and pyarrow decode them. Values that differ only in
case must not share a folder on a case-insensitive disk, so one case is escaped as
well: lowercase letters in market names (``kPEPE`` → ``%6BPEPE``; ``BTC`` stays
readable; ``xyz:XYZ100`` → ``%78%79%7A%3AXYZ100``) and uppercase letters in interval
names (``1M`` → ``1%4D``; ``1m`` stays).
Either rule alone is injective under case-folding.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote

from hyperlake.errors import UserError

LAKE_ENV = "HYPERLAKE_LAKE"
DEFAULT_LAKE = "data"
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def _escape(value: str, escape_lower: bool, escape_upper: bool) -> str:
    out = []
    for ch in value:
        keep = ch in _SAFE and not (
            (escape_lower and ch.islower()) or (escape_upper and ch.isupper()))
        out.append(ch if keep else "".join(f"%{b:02X}" for b in ch.encode()))
    return "".join(out)


def encode_market(market: str) -> str:
    return _escape(market, escape_lower=True, escape_upper=False)


def encode_interval(interval: str) -> str:
    return _escape(interval, escape_lower=False, escape_upper=True)


def decode_value(text: str) -> str:
    return unquote(text)


def lake_root(cli_value: str | None = None) -> Path:
    """``--lake`` beats ``$HYPERLAKE_LAKE`` beats ``./data``."""
    text = cli_value or os.environ.get(LAKE_ENV) or DEFAULT_LAKE
    root = Path(text).expanduser()
    if root.exists() and not root.is_dir():
        raise UserError(f"--lake: {root} exists and is not a directory")
    return root


class LakePaths:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def state(self) -> Path:
        return self.root / "_state"

    @property
    def lock_file(self) -> Path:
        return self.state / "writer.lock"

    def dataset(self, name: str) -> Path:
        return self.root / name

    def partition(self, dataset: str, market: str, interval: str, date: str) -> Path:
        return (self.root / dataset / f"market={encode_market(market)}"
                / f"interval={encode_interval(interval)}" / f"date={date}")

    def checkpoint_series(self, dataset: str, source: str, market: str, interval: str) -> Path:
        """All checkpoint jobs of one (dataset, source, market, interval)."""
        return (self.root / "_checkpoints" / dataset / source / f"market={encode_market(market)}"
                / f"interval={encode_interval(interval)}")

    def checkpoints(self, dataset: str) -> Path:
        return self.root / "_checkpoints" / dataset

    def gap_ledger(self, dataset: str, source: str, market: str, interval: str) -> Path:
        return (self.state / "gaps" / dataset / source / f"market={encode_market(market)}"
                / f"interval={encode_interval(interval)}")

    def coverage(self, dataset: str, source: str, market: str, interval: str) -> Path:
        """Coverage that outlives consumed checkpoints (written by compaction)."""
        return (self.state / "coverage" / dataset / source / f"market={encode_market(market)}"
                / f"interval={encode_interval(interval)}")
