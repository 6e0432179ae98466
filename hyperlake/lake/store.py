"""Where the lake's bytes live: one small protocol, a local disk or an object store.

Every read and write of a lake file goes through a ``Store`` (``LakePaths.store``), so
the rest of the lake code never asks which kind it has: the store objects carry the
difference.

``LocalStore`` (a folder) is what the lake always did: a file appears by temporary
file + fsync + ``os.replace`` + fsync of the folder (``lake.atomic``), one writer at a
time by ``flock`` (``lake.lock``); preconditions are not needed there, the lock gives
this process the lake alone, so every put is an atomic replace.

``hyperlake.lake.s3.ObjectStore`` (``s3://bucket/prefix``, the ``s3`` extra) has no
rename and no flock. It relies on what object storage guarantees: a single PUT is
atomic (a reader sees the old object or the new one, never a part), and conditional
writes (``If-None-Match: *``, ``If-Match: <etag>``) make the writer lease
(``lake.lease``) and the replacement of a compacted partition safe against another
writer. It is imported only for an ``s3://`` root, so the base install never loads
obstore.

Locations are ``pathlib.Path`` on disk and ``ObjectPath`` (``s3://bucket/key``) on an
object store: both join with ``/`` and have ``name`` and ``parent``; ``str()`` gives
what DuckDB, polars and the user read (a path, or the URL). A location does no I/O
itself — a store does.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Protocol

from hyperlake.errors import HyperlakeError, UserError

if TYPE_CHECKING:
    from hyperlake.lake.lock import WriterLock

#: URL schemes of object stores (``--lake s3://bucket/prefix``).
OBJECT_SCHEMES = ("s3",)


# -- locations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectPath:
    """``s3://bucket/key``: path arithmetic only (a ``pathlib.Path`` would fold the
    ``//`` of the URL into one slash)."""

    bucket: str
    key: str = ""  # no leading or trailing "/"; "" is the bucket itself
    scheme: str = "s3"

    @classmethod
    def parse(cls, url: str) -> ObjectPath:
        scheme, _, rest = url.partition("://")
        bucket, _, key = rest.partition("/")
        if scheme not in OBJECT_SCHEMES or not bucket:
            raise UserError(f"--lake {url}: not an object-store URL (s3://bucket/prefix)")
        return cls(bucket, "/".join(p for p in key.split("/") if p), scheme)

    def __truediv__(self, other: str | PurePath) -> ObjectPath:
        parts = [p for p in str(other).split("/") if p]
        return ObjectPath(self.bucket, "/".join([self.key, *parts] if self.key else parts),
                          self.scheme)

    @property
    def name(self) -> str:
        return self.key.rpartition("/")[2]

    @property
    def parent(self) -> ObjectPath:
        return ObjectPath(self.bucket, self.key.rpartition("/")[0], self.scheme)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"


#: A lake location: a path on disk, or an object's URL.
Location = Path | ObjectPath


def parse_location(text: str) -> Location:
    """``s3://bucket/prefix`` → ObjectPath; anything else is a path on disk."""
    if "://" in text:
        return ObjectPath.parse(text)
    return Path(text).expanduser()


def absolute(location: Location) -> Location:
    """An absolute location (what another process, on another host, can use too):
    a path made absolute (symlinks kept), a URL as it is."""
    return location.absolute() if isinstance(location, Path) else location


def relative(location: Location, root: Location) -> str:
    """``location`` below ``root`` as ``a/b/c`` (the whole location if not below it)."""
    if isinstance(location, ObjectPath) and isinstance(root, ObjectPath):
        prefix = f"{root.key}/" if root.key else ""
        inside = location.bucket == root.bucket and location.key.startswith(prefix)
        return location.key[len(prefix):] if inside else str(location)
    if isinstance(location, Path) and isinstance(root, Path):
        with contextlib.suppress(ValueError):
            return location.relative_to(root).as_posix()
    return str(location)


def matches(relative_name: str, pattern: str) -> bool:
    """Whether ``a/b/c`` matches a glob like ``*/b/c*`` segment by segment (a ``*``
    never crosses a ``/``, as in ``Path.glob``)."""
    names, globs = relative_name.split("/"), pattern.split("/")
    return len(names) == len(globs) and all(
        fnmatch.fnmatchcase(n, g) for n, g in zip(names, globs, strict=True))


# -- what a store answers ----------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A file or object: its size, its version (an object's ETag; None on disk) and
    when it was last written (epoch seconds)."""

    location: Location
    size: int
    modified: float
    version: str | None = None


@dataclass(frozen=True)
class IfMatch:
    """Write only while the object is still the version read (``If-Match``)."""

    version: str | None


#: Write only if nothing is there yet (``If-None-Match: *``).
IF_ABSENT = IfMatch(None)


class Conflict(HyperlakeError):
    """A conditional write lost: another writer changed the object first. Nothing was
    written; what this run had committed before stays."""

    exit_code = 3


class Replaced(Conflict):
    """An object changed between listing it and reading it (a compaction replaced the
    partition): read again from a fresh listing."""


#: How ``Replaced`` says it, so that a reader can tell it inside another error's text
#: (DuckDB wraps what its filesystem raised).
REPLACED = "was replaced (by a compaction) while this query read it"


class StoreError(HyperlakeError):
    """The store refused or failed a request (after its retries): one line, the URL."""


@dataclass
class ParquetFile:
    """A lake file opened for pyarrow: ``source`` is what ``pq.read_table`` and
    ``pq.read_metadata`` take (a path on disk; a buffer or a ranged reader of an
    object), ``version`` what a conditional replace of it must match."""

    location: Location
    source: Any
    version: str | None = None
    data: Any = None  # the bytes read, when the whole object was fetched


class Staging(Protocol):
    """A file being written (``Store.staging``): pyarrow writes to ``sink``."""

    @property
    def sink(self) -> Any: ...

    def metadata(self) -> Any:
        """The staged file's Parquet footer (``pyarrow.parquet.FileMetaData``)."""
        ...

    def same_as(self, current: ParquetFile) -> bool:
        """Whether the staged bytes equal ``current``'s (then nothing is replaced)."""
        ...


class Store(Protocol):
    """What the lake needs of its storage. Every mutation is atomic: a reader sees a
    file whole or not at all."""

    @property
    def lock_suffix(self) -> str:
        """The writer lock's file name suffix (``writer.lock`` / ``writer.lease``)."""
        ...

    @property
    def can_tear(self) -> bool:
        """Whether a crash can leave a file torn (cut short) in this store: on disk, yes
        (see ``lake.quarantine``); an object store's single PUTs land whole or not at
        all, so there is nothing for :meth:`torn_parquet` to find and no need to look."""
        ...

    def probe(self, root: Location) -> bool:
        """Whether ``root`` holds anything; UserError (one line) when it cannot be a
        lake root or cannot be reached."""
        ...

    def absolute(self, location: Location) -> Location: ...

    def files(self, folder: Location, pattern: str) -> list[Location]:
        """Files below ``folder`` matching ``pattern`` (``*`` never crosses ``/``),
        sorted; none when ``folder`` is missing."""
        ...

    def dirs(self, folder: Location, pattern: str) -> list[Location]:
        """Folders below ``folder`` matching ``pattern``, sorted."""
        ...

    def stat(self, location: Location) -> Entry | None: ...

    def read(self, location: Location) -> bytes:
        """The whole file; FileNotFoundError when missing."""
        ...

    def parquet(self, location: Location, *, footer_only: bool = False) -> ParquetFile:
        """``location`` for pyarrow (``footer_only``: only its footer will be read, so an
        object is read by ranges instead of whole). A missing file fails when read."""
        ...

    def parquet_if_exists(self, location: Location) -> ParquetFile | None:
        """``location`` read whole for pyarrow, with the version a replace must match;
        None when there is no such file."""
        ...

    def put(self, location: Location, data: bytes, only: IfMatch | None = None) -> None:
        """Write ``data`` atomically (``only``: the precondition; Conflict if it fails)."""
        ...

    def put_parquet(self, location: Location, table: Any, options: dict[str, Any]) -> None:
        """Write a pyarrow Table as a Parquet file, atomically."""
        ...

    def staging(self, location: Location,
                only: IfMatch | None = None) -> contextlib.AbstractContextManager[Staging]:
        """Stage a file; it replaces ``location`` when the block ends without an
        exception (and with one, nothing is left behind)."""
        ...

    def delete(self, locations: Sequence[Location]) -> None:
        """Remove files (missing ones are no error), durably."""
        ...

    def move(self, source: Location, target: Location) -> None: ...

    def remove_tree(self, folder: Location) -> None:
        """Remove ``folder`` and everything below it (best effort)."""
        ...

    def prune(self, folders: Iterable[Location]) -> None:
        """Remove each of ``folders`` if it is empty (disk only: an object store has
        no folders)."""
        ...

    def sweep(self, folder: Location) -> int:
        """Remove what interrupted writes left below ``folder``; how many."""
        ...

    def torn_parquet(self, location: Location) -> str | None:
        """The cheap test of ``lake.quarantine``: None when the file can be whole."""
        ...

    def lock(self, lock_file: Location) -> WriterLock:
        """The writer lock (or another lock) whose state lives at ``lock_file``."""
        ...

    def arrow_files(self, locations: Sequence[Location]) -> tuple[Any, list[str]]:
        """(a pyarrow filesystem, the names of ``locations`` on it) for reading these
        files with pyarrow; the filesystem is None on local disk, where polars reads
        the paths itself. On an object store the bytes come through the lake's own
        client: polars' cloud reader is never used, because it leaves a thread behind
        that reads the process's environment, and any later change to ``os.environ``
        (from any thread) can then crash the process (glibc's getenv/setenv are not
        thread-safe; reproduced with polars 2.1 in a few seconds of ``os.environ``
        updates after one ``scan_parquet`` of an ``s3://`` URL)."""
        ...

    def attach(self, con: Any) -> None:
        """Let a DuckDB connection read this store's URLs."""
        ...
