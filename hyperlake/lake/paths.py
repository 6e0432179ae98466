"""Every path of the lake is spelled here, and parsed here: one owner, both directions.

Layout under the lake root (default ``./data``):

    candles/market=BTC/interval=1m/date=2026-03-30/part-0.parquet
    funding/market=BTC/interval=1h/date=2026-03-30/part-0.parquet
    _checkpoints/<dataset>/<source>/market=…/interval=…/job-<start>-<end>/<shard>/part-<a>-<b>.parquet
    _state/gaps/<dataset>/<source>/market=…/interval=…/gap-<a>-<b>.json
    _state/provisional/<dataset>/<source>/market=…/interval=…/provisional-<a>-<b>.json
    _state/coverage/<dataset>/<source>/market=…/interval=…/covered-<a>-<b>
    _state/rows/<dataset>/market=…/interval=…/rows.json   (rows of each partition)
    _state/universe/…   _state/writer.lock
    _state/update/last-run.json   _state/stream/status.json
    _quarantine/…       files that could not be read, moved aside (``lake.quarantine``)

Partition values are URL-encoded (``:`` → ``%3A``, ``@107`` → ``%40107``); DuckDB,
polars and pyarrow decode them. Values that differ only in
case must not share a folder on a case-insensitive disk, so one case is escaped as
well: lowercase letters in market names (``kPEPE`` → ``%6BPEPE``; ``BTC`` stays
readable; ``xyz:XYZ100`` → ``%78%79%7A%3AXYZ100``) and uppercase letters in interval
names (``1M`` → ``1%4D``; ``1m`` stays).
Either rule alone is injective under case-folding.

File names state what they cover: ``part-<a>-<b>.parquet``, ``gap-<a>-<b>.json`` and
``covered-<a>-<b>`` each name the half-open span [a, b) in epoch ms. A name that does
not parse (or whose end precedes its start) is not ours: listings skip it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from hyperlake.errors import UserError
from hyperlake.lake.lock import RunGrant
from hyperlake.lake.ranges import Span
from hyperlake.schemas.vocabulary import WITHOUT_INTERVAL, Dataset

LAKE_ENV = "HYPERLAKE_LAKE"
DEFAULT_LAKE = "data"
#: The one file of a compacted partition, and the pattern every reader lists.
LAKE_FILE = "part-0.parquet"
LAKE_FILE_GLOB = "part-*.parquet"
#: Every checkpoint part of a dataset, relative to ``_checkpoints/<dataset>``.
CHECKPOINT_PARTS_GLOB = "*/market=*/interval=*/job-*/*/part-*.parquet"
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


def _folder_value(folder: Path, key: str) -> str | None:
    """The decoded value of a ``key=value`` folder, or None when it is not one."""
    prefix = f"{key}="
    return decode_value(folder.name[len(prefix):]) if folder.name.startswith(prefix) else None


def parse_date_folder(folder: Path) -> dt.date | None:
    """The date of a ``date=YYYY-MM-DD`` folder, or None when it is not one."""
    value = _folder_value(folder, "date")
    try:
        return None if value is None else dt.date.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class SpanFileName:
    """A family of file names that each state a span: ``<prefix><a>-<b><suffix>``."""

    prefix: str
    suffix: str

    def spell(self, span: Span) -> str:
        return f"{self.prefix}{span.start}-{span.end}{self.suffix}"

    def parse(self, name: str) -> Span | None:
        """The span a name states; None for a name of another kind, or a broken one."""
        match = re.fullmatch(rf"{re.escape(self.prefix)}(\d+)-(\d+){re.escape(self.suffix)}",
                             name)
        if match is None:
            return None
        start, end = int(match[1]), int(match[2])
        return Span(start, end) if start <= end else None


PART = SpanFileName("part-", ".parquet")
GAP = SpanFileName("gap-", ".json")
PROVISIONAL = SpanFileName("provisional-", ".json")
COVERED = SpanFileName("covered-", "")
JOB = SpanFileName("job-", "")


@dataclass(frozen=True)
class SeriesKey:
    """One extracted series: a dataset, the source its rows came from, a market and
    an interval (funding: ``1h``)."""

    dataset: Dataset
    source: str
    market: str
    interval: str

    def describe(self) -> str:
        return f"{self.dataset} {self.source} {self.market} {self.interval}"


def lake_root(cli_value: str | None = None) -> Path:
    """``--lake`` beats ``$HYPERLAKE_LAKE`` beats ``./data``. It may not exist yet (the
    stages that write create it), but what exists there must be a directory."""
    text = cli_value or os.environ.get(LAKE_ENV) or DEFAULT_LAKE
    root = Path(text).expanduser()
    try:
        info = root.stat()
    except FileNotFoundError:
        return root
    except OSError as exc:  # a symlink loop, a name too long, a file on the way
        raise UserError(f"--lake: {root}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UserError(f"--lake: {root} exists and is not a directory")
    return root


def existing_lake(cli_value: str | None = None) -> Path:
    """The lake root a command reads: it must exist (a typo must not read as "no data")."""
    root = lake_root(cli_value)
    if not root.is_dir():
        raise UserError(f"--lake: {root} does not exist (give --lake DIR or set "
                        f"${LAKE_ENV})")
    return root


class LakePaths:
    """The lake under ``root``, as one writer sees it. ``grant``: this process writes
    under a run's grant (a task of ``hyperlake backfill`` in a worker process), and
    every commit checks it first (``check_grant``); None: the process holds the writer
    lock itself, or only reads."""

    def __init__(self, root: Path, grant: RunGrant | None = None) -> None:
        self.root = root
        self.grant = grant

    def check_grant(self) -> None:
        """Before a commit: ``GrantRevoked`` once this writer's run no longer holds the
        lake (``lake.lock.RunGrant``); nothing to check for the lock's own holder."""
        if self.grant is not None:
            self.grant.check()

    # -- spelling ----------------------------------------------------------------------

    @property
    def state(self) -> Path:
        return self.root / "_state"

    @property
    def lock_file(self) -> Path:
        return self.state / "writer.lock"

    @property
    def update_record(self) -> Path:
        """The last ``hyperlake update`` run: when, result, duration, requests."""
        return self.state / "update" / "last-run.json"

    @property
    def stream_status(self) -> Path:
        """What a running ``hyperlake stream`` says of itself (rewritten every few s)."""
        return self.state / "stream" / "status.json"

    @property
    def quarantine(self) -> Path:
        return self.root / "_quarantine"

    def dataset(self, name: Dataset) -> Path:
        return self.root / name

    def series_folder(self, dataset: Dataset, market: str, interval: str) -> Path:
        """The partitions of one (dataset, market, interval) live below this folder
        (a dataset without intervals: of one (dataset, market))."""
        return self.root / dataset / _tail(dataset, market, interval)

    def partition(self, dataset: Dataset, market: str, interval: str, date: str) -> Path:
        return self.series_folder(dataset, market, interval) / f"date={date}"

    def checkpoints(self, dataset: Dataset) -> Path:
        return self.root / "_checkpoints" / dataset

    def checkpoint_series(self, key: SeriesKey) -> Path:
        """All checkpoint jobs of one series."""
        return self.checkpoints(key.dataset) / key.source / _series_tail(key)

    def gaps(self, dataset: Dataset) -> Path:
        return self.state / "gaps" / dataset

    def gap_ledger(self, key: SeriesKey) -> Path:
        return self.gaps(key.dataset) / key.source / _series_tail(key)

    def provisionals(self, dataset: Dataset) -> Path:
        return self.state / "provisional" / dataset

    def provisional(self, key: SeriesKey) -> Path:
        """Spans answered but not for good yet (near the head of the source's data)."""
        return self.provisionals(key.dataset) / key.source / _series_tail(key)

    def row_index(self, dataset: Dataset, market: str, interval: str) -> Path:
        """Rows and first/last key of each compacted partition of a series (written by
        compaction, read by ``hyperlake status``: no Parquet file is opened there)."""
        return self.state / "rows" / dataset / _tail(dataset, market, interval) / "rows.json"

    def coverages(self, dataset: Dataset) -> Path:
        return self.state / "coverage" / dataset

    def coverage(self, key: SeriesKey) -> Path:
        """Coverage that outlives consumed checkpoints (written by compaction)."""
        return self.coverages(key.dataset) / key.source / _series_tail(key)

    # -- parsing -----------------------------------------------------------------------

    def markets(self, dataset: Dataset) -> list[str]:
        """The markets with a partition folder in ``dataset``, sorted."""
        return _values(self.dataset(dataset), "market")

    def intervals(self, dataset: Dataset, market: str) -> list[str]:
        folder = self.dataset(dataset) / f"market={encode_market(market)}"
        return _values(folder, "interval")

    def lake_series(self, dataset: Dataset) -> list[tuple[str, str]]:
        """(market, interval) of every series folder of ``dataset`` (interval ``""``
        for a dataset without intervals)."""
        return sorted(pair for folder in self.dataset(dataset).glob(_series_glob(dataset))
                      if (pair := _market_interval(dataset, folder)) is not None)

    def partitions(self, dataset: Dataset, market: str,
                   interval: str) -> list[tuple[dt.date | None, Path]]:
        """Every ``date=`` folder of a series that holds a lake file, sorted by date;
        a folder whose name is no date comes last, with None."""
        found = []
        for folder in self.series_folder(dataset, market, interval).glob("date=*"):
            if folder.is_dir() and lake_files(folder):
                found.append((parse_date_folder(folder), folder))
        return sorted(found, key=lambda item: (item[0] is None, item[0] or dt.date.min,
                                               item[1]))

    def state_keys(self, dataset: Dataset) -> list[SeriesKey]:
        """Every series with a checkpoint, coverage or ledger folder, from folder names."""
        roots = (self.checkpoints(dataset), self.coverages(dataset), self.gaps(dataset),
                 self.provisionals(dataset))
        keys = {key for root in roots for key in _keys_under(root, dataset)}
        return sorted(keys, key=lambda k: (k.source, k.market, k.interval))

    def checkpoint_keys(self, dataset: Dataset) -> list[SeriesKey]:
        """Every series with a checkpoint folder."""
        return sorted(_keys_under(self.checkpoints(dataset), dataset),
                      key=lambda k: (k.source, k.market, k.interval))


def dataset_files_glob(dataset: Dataset) -> str:
    """Every lake file of ``dataset``, relative to its folder (``.tmp-*`` never matches)."""
    return f"{_series_glob(dataset)}/date=*/{LAKE_FILE_GLOB}"


def lake_files(folder: Path) -> list[Path]:
    """The lake files of one partition folder (normally just ``part-0.parquet``)."""
    return sorted(folder.glob(LAKE_FILE_GLOB))


def _tail(dataset: Dataset, market: str, interval: str) -> Path:
    """``market=…/interval=…`` (``market=…`` for a dataset without intervals)."""
    folder = Path(f"market={encode_market(market)}")
    if dataset in WITHOUT_INTERVAL:
        return folder
    return folder / f"interval={encode_interval(interval)}"


def _series_tail(key: SeriesKey) -> Path:
    return _tail(key.dataset, key.market, key.interval)


def _series_glob(dataset: Dataset) -> str:
    return "market=*" if dataset in WITHOUT_INTERVAL else "market=*/interval=*"


def _market_interval(dataset: Dataset, folder: Path) -> tuple[str, str] | None:
    """(market, interval) of a series folder (``folder`` is the ``market=`` one for a
    dataset without intervals, and the interval is ``""``)."""
    if dataset in WITHOUT_INTERVAL:
        market = _folder_value(folder, "market")
        return None if market is None else (market, "")
    market, interval = _folder_value(folder.parent, "market"), _folder_value(folder, "interval")
    return None if market is None or interval is None else (market, interval)


def _keys_under(root: Path, dataset: Dataset) -> set[SeriesKey]:
    """Series keys of the ``<source>/<series folder>`` folders below ``root``."""
    levels = len(Path(_series_glob(dataset)).parts)
    return {SeriesKey(dataset, folder.parents[levels - 1].name, *pair)
            for folder in root.glob(f"*/{_series_glob(dataset)}")
            if (pair := _market_interval(dataset, folder)) is not None}


def _values(folder: Path, key: str) -> list[str]:
    """Decoded ``key=value`` sub-folder names of ``folder`` (none if it is missing)."""
    if not folder.is_dir():
        return []
    return sorted(value for p in folder.iterdir()
                  if p.is_dir() and (value := _folder_value(p, key)) is not None)
