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
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote

from hyperlake.errors import UserError
from hyperlake.lake.local import LOCAL
from hyperlake.lake.ranges import Span
from hyperlake.lake.store import Location, ObjectPath, Store, parse_location, relative
from hyperlake.schemas.vocabulary import WITHOUT_INTERVAL, Dataset

if TYPE_CHECKING:
    from hyperlake.lake.lock import Grant, WriterLock

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


def _folder_value(folder: Location | PurePosixPath, key: str) -> str | None:
    """The decoded value of a ``key=value`` folder, or None when it is not one."""
    prefix = f"{key}="
    return decode_value(folder.name[len(prefix):]) if folder.name.startswith(prefix) else None


def parse_date_folder(folder: Location) -> dt.date | None:
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


def open_store(location: Location) -> Store:
    """The store ``location`` lives in: this machine's disk, or an object store (the
    ``s3`` extra: one client per bucket and process, made on first use)."""
    if isinstance(location, ObjectPath):
        return _object_store(location)
    return LOCAL


def _object_store(location: ObjectPath) -> Store:
    try:
        from hyperlake.lake.s3 import store_for
    except ImportError as exc:
        raise UserError(f"--lake {location}: a lake on object storage needs the s3 extra "
                        f"(pip install 'hyperlake[s3]'; {exc.name or exc} is missing)") from None
    return store_for(location.bucket)


def lake_root(cli_value: str | None = None) -> Location:
    """``--lake`` beats ``$HYPERLAKE_LAKE`` beats ``./data``: a folder, or
    ``s3://bucket/prefix`` (the ``s3`` extra). It may not exist yet (the stages that
    write create it), but what exists there must be a directory; an object store must
    answer (its bucket exists, the credentials are accepted)."""
    root = parse_location(cli_value or os.environ.get(LAKE_ENV) or DEFAULT_LAKE)
    open_store(root).probe(root)
    return root


def existing_lake(cli_value: str | None = None) -> Location:
    """The lake root a command reads: it must exist (a typo must not read as "no data")."""
    root = parse_location(cli_value or os.environ.get(LAKE_ENV) or DEFAULT_LAKE)
    if not open_store(root).probe(root):
        raise UserError(f"--lake: {root} does not exist (give --lake DIR or set "
                        f"${LAKE_ENV})")
    return root


@dataclass(frozen=True)
class Partition:
    """One ``date=`` folder of a series and its lake files (normally ``part-0``)."""

    date: dt.date | None  # None: the folder's name is no date
    folder: Location
    files: tuple[Location, ...]


class LakePaths:
    """The lake under ``root``: its names, and the store they live in. ``grant``: this
    process commits on behalf of a run whose writer lock another process holds (a
    Dwellir worker on an object store, a task of ``hyperlake backfill``), and checks
    it before each commit (``check_grant``)."""

    def __init__(self, root: Location, grant: Grant | None = None) -> None:
        self.root = root
        self.store: Store = open_store(root)
        self.grant = grant

    def check_grant(self) -> None:
        """Before a commit: raise once this writer's run no longer holds the lake."""
        if self.grant is not None:
            self.grant.check()

    def writer_lock(self) -> WriterLock:
        """The lake's writer lock (not acquired yet)."""
        return self.store.lock(self.lock_file)

    def lock(self, name: str) -> WriterLock:
        """Another lock of the lake, ``_state/<name>.lock`` (``.lease`` on an object
        store): one streamer per lake, say."""
        return self.store.lock(self.state / f"{name}{self.store.lock_suffix}")

    # -- spelling ----------------------------------------------------------------------

    @property
    def state(self) -> Location:
        return self.root / "_state"

    @property
    def lock_file(self) -> Location:
        """``_state/writer.lock`` (``writer.lease`` on an object store)."""
        return self.state / f"writer{self.store.lock_suffix}"

    @property
    def update_record(self) -> Location:
        """The last ``hyperlake update`` run: when, result, duration, requests."""
        return self.state / "update" / "last-run.json"

    @property
    def stream_status(self) -> Location:
        """What a running ``hyperlake stream`` says of itself (rewritten every few s)."""
        return self.state / "stream" / "status.json"

    @property
    def quarantine(self) -> Location:
        return self.root / "_quarantine"

    def dataset(self, name: Dataset) -> Location:
        return self.root / name

    def series_folder(self, dataset: Dataset, market: str, interval: str) -> Location:
        """The partitions of one (dataset, market, interval) live below this folder
        (a dataset without intervals: of one (dataset, market))."""
        return self.root / dataset / _tail(dataset, market, interval)

    def partition(self, dataset: Dataset, market: str, interval: str, date: str) -> Location:
        return self.series_folder(dataset, market, interval) / f"date={date}"

    def checkpoints(self, dataset: Dataset) -> Location:
        return self.root / "_checkpoints" / dataset

    def checkpoint_series(self, key: SeriesKey) -> Location:
        """All checkpoint jobs of one series."""
        return self.checkpoints(key.dataset) / key.source / _series_tail(key)

    def gaps(self, dataset: Dataset) -> Location:
        return self.state / "gaps" / dataset

    def gap_ledger(self, key: SeriesKey) -> Location:
        return self.gaps(key.dataset) / key.source / _series_tail(key)

    def provisionals(self, dataset: Dataset) -> Location:
        return self.state / "provisional" / dataset

    def provisional(self, key: SeriesKey) -> Location:
        """Spans answered but not for good yet (near the head of the source's data)."""
        return self.provisionals(key.dataset) / key.source / _series_tail(key)

    def row_index(self, dataset: Dataset, market: str, interval: str) -> Location:
        """Rows and first/last key of each compacted partition of a series (written by
        compaction, read by ``hyperlake status``: no Parquet file is opened there)."""
        return self.state / "rows" / dataset / _tail(dataset, market, interval) / "rows.json"

    def coverages(self, dataset: Dataset) -> Location:
        return self.state / "coverage" / dataset

    def coverage(self, key: SeriesKey) -> Location:
        """Coverage that outlives consumed checkpoints (written by compaction)."""
        return self.coverages(key.dataset) / key.source / _series_tail(key)

    # -- parsing ----------------------------------------------------------------------

    def markets(self, dataset: Dataset) -> list[str]:
        """The markets with a partition folder in ``dataset``, sorted."""
        return self._values(self.dataset(dataset), "market")

    def intervals(self, dataset: Dataset, market: str) -> list[str]:
        folder = self.dataset(dataset) / f"market={encode_market(market)}"
        return self._values(folder, "interval")

    def lake_series(self, dataset: Dataset) -> list[tuple[str, str]]:
        """(market, interval) of every series folder of ``dataset`` (interval ``""``
        for a dataset without intervals)."""
        folder = self.dataset(dataset)
        return sorted(pair for found in self.store.dirs(folder, _series_glob(dataset))
                      if (pair := _market_interval(dataset, _below(found, folder)))
                      is not None)

    def partition_files(self, dataset: Dataset, market: str,
                        interval: str) -> list[Partition]:
        """Every ``date=`` folder of a series that holds a lake file, with its files,
        sorted by date; a folder whose name is no date comes last, with None. One
        listing of the series (on an object store: no request per partition)."""
        folder = self.series_folder(dataset, market, interval)
        by_folder: dict[str, list[Location]] = {}
        folders: dict[str, Location] = {}
        for file in self.store.files(folder, f"date=*/{LAKE_FILE_GLOB}"):
            key = str(file.parent)
            by_folder.setdefault(key, []).append(file)
            folders[key] = file.parent
        found = [Partition(parse_date_folder(folders[key]), folders[key], tuple(files))
                 for key, files in by_folder.items()]
        return sorted(found, key=lambda p: (p.date is None, p.date or dt.date.min,
                                            str(p.folder)))

    def partitions(self, dataset: Dataset, market: str,
                   interval: str) -> list[tuple[dt.date | None, Location]]:
        """Every ``date=`` folder of a series that holds a lake file, sorted by date;
        a folder whose name is no date comes last, with None."""
        return [(p.date, p.folder) for p in self.partition_files(dataset, market, interval)]

    def state_keys(self, dataset: Dataset) -> list[SeriesKey]:
        """Every series with a checkpoint, coverage or ledger folder, from folder names."""
        roots = (self.checkpoints(dataset), self.coverages(dataset), self.gaps(dataset),
                 self.provisionals(dataset))
        keys = {key for root in roots for key in self._keys_under(root, dataset)}
        return sorted(keys, key=lambda k: (k.source, k.market, k.interval))

    def checkpoint_keys(self, dataset: Dataset) -> list[SeriesKey]:
        """Every series with a checkpoint folder."""
        return sorted(self._keys_under(self.checkpoints(dataset), dataset),
                      key=lambda k: (k.source, k.market, k.interval))

    def _keys_under(self, root: Location, dataset: Dataset) -> set[SeriesKey]:
        """Series keys of the ``<source>/<series folder>`` folders below ``root``."""
        found = set()
        for folder in self.store.dirs(root, f"*/{_series_glob(dataset)}"):
            below = _below(folder, root)
            pair = _market_interval(dataset, PurePosixPath(*below.parts[1:]))
            if pair is not None:
                found.add(SeriesKey(dataset, below.parts[0], *pair))
        return found

    def _values(self, folder: Location, key: str) -> list[str]:
        """Decoded ``key=value`` sub-folder names of ``folder`` (none if it is missing)."""
        return sorted(value for sub in self.store.dirs(folder, f"{key}=*")
                      if (value := _folder_value(sub, key)) is not None)


def dataset_files_glob(dataset: Dataset) -> str:
    """Every lake file of ``dataset``, relative to its folder (``.tmp-*`` never matches)."""
    return f"{_series_glob(dataset)}/date=*/{LAKE_FILE_GLOB}"


def _tail(dataset: Dataset, market: str, interval: str) -> PurePosixPath:
    """``market=…/interval=…`` (``market=…`` for a dataset without intervals)."""
    folder = PurePosixPath(f"market={encode_market(market)}")
    if dataset in WITHOUT_INTERVAL:
        return folder
    return folder / f"interval={encode_interval(interval)}"


def _series_tail(key: SeriesKey) -> PurePosixPath:
    return _tail(key.dataset, key.market, key.interval)


def _series_glob(dataset: Dataset) -> str:
    return "market=*" if dataset in WITHOUT_INTERVAL else "market=*/interval=*"


def _below(location: Location, root: Location) -> PurePosixPath:
    """``location`` relative to ``root``, as a pure path (a listing's own names)."""
    return PurePosixPath(relative(location, root))


def _market_interval(dataset: Dataset, tail: PurePosixPath) -> tuple[str, str] | None:
    """(market, interval) of a series folder, given as ``market=…[/interval=…]``
    (a dataset without intervals: the interval is ``""``)."""
    parts = tail.parts
    if dataset in WITHOUT_INTERVAL:
        market = _folder_value(tail, "market") if len(parts) == 1 else None
        return None if market is None else (market, "")
    if len(parts) != 2:
        return None
    market = _folder_value(PurePosixPath(parts[0]), "market")
    interval = _folder_value(tail, "interval")
    return None if market is None or interval is None else (market, interval)
