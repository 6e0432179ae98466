"""The filesystem DuckDB reads an object-store lake through (``s3://``), without
``httpfs``.

DuckDB cannot download its ``httpfs`` extension on an offline machine, so a connection
over an ``s3://`` lake registers this fsspec filesystem instead (``Store.attach``), and
the catalog's SQL stays exactly what it is on disk. Three things make it fit the lake:

- a glob is **one** recursive listing of the pattern's literal prefix, matched segment
  by segment (fsspec's own glob walks folder by folder: a year-long lake is hundreds of
  LISTs per query). DuckDB then prunes files on the Hive keys before opening any, as
  on disk: a one-day query opens one candle object;
- an object's size, version and time come from that listing (no HEAD per file);
- every read is pinned to the version the listing saw (``If-Match``): a partition that
  a compaction replaces between the listing and the read fails the query with a clean
  "was replaced" error instead of reading the new object at the old size (wrong footer
  offsets). ``hyperlake sql`` then lists and runs the query once more.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from hyperlake.lake.store import ObjectPath, matches

#: Bytes fetched per read request beyond what DuckDB asked for (its reads of one column
#: chunk are contiguous; a day partition is a few requests, not one per page).
BLOCK_SIZE = 1 << 20


class LakeFileSystem(AbstractFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """``s3://bucket/key`` over a ``lake.s3.ObjectStore``."""

    protocol = "s3"  # on the class: fsspec strips it from paths by the class attribute
    root_marker = ""
    cachable = False  # one per connection: the listing it remembers is its own

    def __init__(self, store: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store
        self.listed: dict[str, tuple[int, str | None, float]] = {}

    # -- names -----------------------------------------------------------------------

    def _location(self, path: str) -> ObjectPath:
        bucket, _, key = self._strip_protocol(path).partition("/")
        return ObjectPath(bucket, key.strip("/"))

    def glob(self, path: str, maxdepth: int | None = None, **kwargs: Any) -> list[str]:
        pattern = self._strip_protocol(path)
        literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
        literal = literal[: literal.rfind("/") + 1] if "/" in literal else ""
        bucket, _, prefix = literal.partition("/")
        found = []
        for key, size, version, written in self.store.list_entries(prefix.strip("/")):
            name = f"{bucket}/{key}"
            if matches(name, pattern):
                self.listed[name] = (size, version, written)
                found.append(name)
        return sorted(found)

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        name = self._strip_protocol(path)
        seen = self.listed.get(name)
        if seen is None:
            location = self._location(name)
            entry = self.store.stat(location)
            if entry is None:
                if self.store.probe(location):  # one request, not a listing of all below
                    return {"name": name, "size": 0, "type": "directory"}
                raise FileNotFoundError(name)
            seen = self.listed[name] = (entry.size, entry.version, entry.modified)
        size, version, written = seen
        return {"name": name, "size": size, "type": "file", "ETag": version,
                "mtime": written}

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        base = self._location(path)
        children: dict[str, dict[str, Any]] = {}
        for key, size, version, written in self.store.list_entries(base.key):
            rest = key[len(base.key):].lstrip("/") if base.key else key
            head, _, tail = rest.partition("/")
            name = f"{base.bucket}/{base.key}/{head}" if base.key else f"{base.bucket}/{head}"
            if tail:
                children.setdefault(name, {"name": name, "size": 0, "type": "directory"})
            else:
                self.listed[name] = (size, version, written)
                children[name] = {"name": name, "size": size, "type": "file"}
        return list(children.values()) if detail else sorted(children)

    def modified(self, path: str) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.info(path)["mtime"], tz=dt.UTC)

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None,
              autocommit: bool = True, cache_options: Any = None,
              **kwargs: Any) -> PinnedFile:
        if mode != "rb":
            raise PermissionError(f"{path}: the lake is read-only here")
        info = self.info(path)
        return PinnedFile(self, info["name"], info["size"], info.get("ETag"),
                          block_size or BLOCK_SIZE)


class PinnedFile(AbstractBufferedFile):  # type: ignore[misc]  # fsspec is untyped
    """One object at the version its listing saw."""

    def __init__(self, fs: LakeFileSystem, path: str, size: int, version: str | None,
                 block_size: int) -> None:
        super().__init__(fs, path, mode="rb", block_size=block_size,
                         cache_type="readahead", size=size)
        self.version = version
        self.location = fs._location(path)

    def _fetch_range(self, start: int, end: int) -> bytes:
        if start >= end:
            return b""
        data: bytes = self.fs.store.read_pinned(self.location, self.version, start, end)
        return data
