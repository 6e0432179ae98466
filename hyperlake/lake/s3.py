"""The lake on S3-compatible object storage (``--lake s3://bucket/prefix``): obstore.

Why obstore: it is the one client measured with *typed* conditional writes
(``mode="create"`` → ``AlreadyExistsError``, ``mode={"e_tag": …}`` →
``PreconditionError``) and version-pinned reads, every lake operation is a single
request (pyarrow's S3 filesystem makes every write a 3-request multipart upload and has
no preconditions at all), it was the fastest on small objects, it imports in a few
milliseconds with no dependencies, and polars reads S3 with the same Rust crate and the
same option names. Imported only for an ``s3://`` root (the ``s3`` extra).

What object storage guarantees, and how the lake uses it:

- a single PUT is atomic: a reader sees the old object or the new one. Every lake object
  is one PUT of an in-memory buffer (``use_multipart=False``: a torn multipart upload
  can never be a lake object); there are no temporaries, no rename, no fsync;
- conditional writes: the writer lease (``lake.lease``) and the swap of a compacted
  partition (``If-Match`` the version the merge read; ``If-None-Match: *`` for a new
  one) stop a second writer from overwriting what it did not read;
- every write here first checks the leases this process holds on the lake (``guard``):
  a run whose lease was lost stops before its next write.

Configuration: the standard AWS environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``/``AWS_DEFAULT_REGION``,
web identity, container and instance credentials), an ``AWS_PROFILE`` or the
``~/.aws`` files when boto3 is installed, and ``HYPERLAKE_S3_ENDPOINT`` for an
S3-compatible store (MinIO, R2, Ceph; ``http://`` allowed for a local one).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import S3Store

from hyperlake.errors import UserError
from hyperlake.lake.lease import Lease
from hyperlake.lake.lock import WriterLock
from hyperlake.lake.store import (
    REPLACED,
    Conflict,
    Entry,
    IfMatch,
    Location,
    ObjectPath,
    ParquetFile,
    Replaced,
    Staging,
    StoreError,
    matches,
)

if TYPE_CHECKING:
    from obstore import GetOptions, PutMode

ENDPOINT_ENV = "HYPERLAKE_S3_ENDPOINT"
#: Listing page size (S3 answers at most 1,000 keys a request).
LIST_CHUNK = 1000


def _key(location: Location) -> str:
    if not isinstance(location, ObjectPath):
        raise TypeError(f"{location} is not an object-store location")
    return location.key


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _mode(only: IfMatch | None) -> PutMode:
    if only is None:
        return "overwrite"
    if only.version is None:
        return "create"
    return {"e_tag": only.version}


class _Requests:
    """obstore's errors as the lake's: a missing object is FileNotFoundError, a lost
    precondition is Conflict, anything else one line naming the URL (StoreError)."""

    def __init__(self, location: ObjectPath | str) -> None:
        self.location = location

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: Any) -> None:
        if exc is None or not isinstance(exc, BaseError | FileNotFoundError):
            return
        where = str(self.location)
        if isinstance(exc, NotFoundError | FileNotFoundError):
            raise FileNotFoundError(errno.ENOENT, "no such object", where) from None
        if isinstance(exc, AlreadyExistsError | PreconditionError):
            raise Conflict(f"{where} was changed by another writer meanwhile; nothing was "
                           "replaced (run the command again)") from None
        if isinstance(exc, PermissionDeniedError | UnauthenticatedError):
            raise StoreError(f"{where}: the store refused the credentials "
                             f"({_first_line(exc)})") from None
        raise StoreError(f"{where}: {_first_line(exc)}") from None


def _probe_error(root: ObjectPath, exc: BaseException) -> UserError:
    """Why an object-store root cannot be used, in one line (exit 2)."""
    text = str(exc)
    endpoint = os.environ.get(ENDPOINT_ENV) or "AWS S3"
    if "NoSuchBucket" in text:
        why = f"the bucket {root.bucket} does not exist (at {endpoint})"
    elif isinstance(exc, PermissionDeniedError | UnauthenticatedError) or any(
            code in text for code in ("AccessDenied", "InvalidAccessKeyId",
                                      "SignatureDoesNotMatch", "403 Forbidden")):
        why = ("the store refused the credentials (set AWS_ACCESS_KEY_ID and "
               "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)")
    elif "error sending request" in text or "connect" in text.lower():
        why = (f"cannot reach {endpoint} (check ${ENDPOINT_ENV} and the network)")
    else:
        why = _first_line(exc)
    return UserError(f"--lake {root}: {why}")


class _ObjectStaging:
    """A file staged in memory; one PUT when the block ends."""

    def __init__(self) -> None:
        import pyarrow as pa

        self._sink = pa.BufferOutputStream()
        self._buffer: Any = None

    @property
    def sink(self) -> Any:
        return self._sink

    def buffer(self) -> Any:
        if self._buffer is None:
            self._buffer = self._sink.getvalue()
        return self._buffer

    def metadata(self) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        return pq.read_metadata(pa.BufferReader(self.buffer()))

    def same_as(self, current: ParquetFile) -> bool:
        return current.data is not None and bytes(self.buffer()) == bytes(current.data)


class ObjectStore:
    """One bucket of an S3-compatible store (``Store``); one per bucket and process."""

    lock_suffix: ClassVar[str] = ".lease"
    can_tear: ClassVar[bool] = False

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.client = S3Store(bucket, **_client_config())
        self._leases: list[Lease] = []
        self._leases_lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Unpickled in another process (a worker, a Dask task): made again there, from
        that process's environment."""
        return (store_for, (self.bucket,))

    # -- reading -------------------------------------------------------------------------

    def probe(self, root: Location) -> bool:
        prefix = _key(root)
        try:
            found = obstore.list_with_delimiter(self.client, prefix=prefix or None)
        except BaseError as exc:
            raise _probe_error(_object(root), exc) from None
        return bool(found["objects"] or found["common_prefixes"])

    def absolute(self, location: Location) -> Location:
        return location

    def files(self, folder: Location, pattern: str) -> list[Location]:
        """One recursive listing of the folder's prefix (pages of 1,000 keys), matched
        segment by segment: never a request per sub-folder."""
        base = _object(folder)
        prefix = f"{base.key}/" if base.key else ""
        found: list[Location] = []
        with _Requests(base):
            for chunk in obstore.list(self.client, prefix=base.key or None,
                                      chunk_size=LIST_CHUNK):
                for meta in chunk:
                    name = meta["path"][len(prefix):]
                    if matches(name, pattern):
                        found.append(ObjectPath(self.bucket, meta["path"], base.scheme))
        return sorted(found, key=str)

    def dirs(self, folder: Location, pattern: str) -> list[Location]:
        """Folders are the listing's common prefixes, one level at a time: a request per
        folder that matches the levels above (as ``Path.glob`` reads each folder)."""
        level = [_object(folder)]
        for glob in pattern.split("/"):
            below: list[ObjectPath] = []
            for parent in level:
                with _Requests(parent):
                    found = obstore.list_with_delimiter(self.client,
                                                        prefix=parent.key or None)
                for common in found["common_prefixes"]:
                    child = ObjectPath(self.bucket, common.rstrip("/"), parent.scheme)
                    if matches(child.name, glob):
                        below.append(child)
            level = below
        return sorted(level, key=str)

    def stat(self, location: Location) -> Entry | None:
        try:
            with _Requests(_object(location)):
                meta = obstore.head(self.client, _key(location))
        except FileNotFoundError:
            return None
        return Entry(location, meta["size"], meta["last_modified"].timestamp(), meta["e_tag"])

    def read(self, location: Location) -> bytes:
        with _Requests(_object(location)):
            return bytes(obstore.get(self.client, _key(location)).bytes())

    def parquet(self, location: Location, *, footer_only: bool = False) -> ParquetFile:
        import pyarrow as pa

        if footer_only:  # the footer only: ranged reads, never the whole object
            with _Requests(_object(location)):
                reader = obstore.open_reader(self.client, _key(location),
                                             buffer_size=64 * 1024)
            return ParquetFile(location, pa.PythonFile(_RangedFile(reader, location),
                                                       mode="r"))
        with _Requests(_object(location)):
            got = obstore.get(self.client, _key(location))
            data = got.bytes()
        return ParquetFile(location, pa.BufferReader(data), got.meta["e_tag"], data)

    def parquet_if_exists(self, location: Location) -> ParquetFile | None:
        try:
            return self.parquet(location)
        except FileNotFoundError:
            return None

    def read_pinned(self, location: ObjectPath, version: str | None, start: int,
                    end: int) -> bytes:
        """Bytes [start, end) of the version a listing saw; ``Replaced`` once it changed
        (any other failure: the store's one-line errors)."""
        options: GetOptions = {"range": (start, end)}
        if version is not None:
            options["if_match"] = version
        with _Requests(location):
            try:
                return bytes(obstore.get(self.client, location.key, options=options).bytes())
            except PreconditionError:
                raise Replaced(f"{location} {REPLACED}; run the query again") from None

    # -- writing -------------------------------------------------------------------------

    def put(self, location: Location, data: bytes, only: IfMatch | None = None) -> None:
        self._check(location)
        self.put_object(_object(location), data, only)

    def put_parquet(self, location: Location, table: Any, options: dict[str, Any]) -> None:
        import pyarrow.parquet as pq

        staged = _ObjectStaging()
        pq.write_table(table, staged.sink, **options)
        self.put(location, staged.buffer())

    @contextlib.contextmanager
    def staging(self, location: Location, only: IfMatch | None = None) -> Iterator[Staging]:
        staged = _ObjectStaging()
        yield staged
        self.put(location, staged.buffer(), only)

    def delete(self, locations: Sequence[Location]) -> None:
        if not locations:
            return
        self._check(locations[0])
        with _Requests(_object(locations[0])):
            obstore.delete(self.client, [_key(p) for p in locations])

    def move(self, source: Location, target: Location) -> None:
        self._check(source)
        with _Requests(_object(source)):
            obstore.copy(self.client, _key(source), _key(target))
            obstore.delete(self.client, _key(source))

    def remove_tree(self, folder: Location) -> None:
        base = _object(folder)
        keys = [key for key, *_ in self.list_entries(base.key)]
        self.delete([ObjectPath(self.bucket, key, base.scheme) for key in keys])

    def prune(self, folders: Iterable[Location]) -> None:
        return None  # an object store has no folders

    def sweep(self, folder: Location) -> int:
        return 0  # no temporaries: every object is one atomic PUT

    def torn_parquet(self, location: Location) -> str | None:
        return None  # one atomic PUT each: never torn (a damaged one fails when read)

    def lock(self, lock_file: Location) -> WriterLock:
        return Lease(self, _object(lock_file))

    # -- what readers need ---------------------------------------------------------------

    def arrow_files(self, locations: Sequence[Location]) -> tuple[Any, list[str]]:
        """Read through ``lake.objectfs`` (pinned ranged GETs, as DuckDB's reads)."""
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        from hyperlake.lake.objectfs import LakeFileSystem

        names = [f"{_object(location).bucket}/{_object(location).key}"
                 for location in locations]
        return PyFileSystem(FSSpecHandler(LakeFileSystem(self))), names

    def attach(self, con: Any) -> None:
        """DuckDB reads ``s3://`` through the lake's adapter, never through ``httpfs``
        (which it would try to download: offline, that fails)."""
        from hyperlake.lake.objectfs import LakeFileSystem

        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        con.register_filesystem(LakeFileSystem(self))

    def list_entries(self, prefix: str) -> list[tuple[str, int, str | None, float]]:
        """(key, size, version, written) of every object under ``prefix`` (a whole
        path-segment prefix): the adapter's one listing per glob."""
        found = []
        with _Requests(f"s3://{self.bucket}/{prefix}"):
            for chunk in obstore.list(self.client, prefix=prefix or None,
                                      chunk_size=LIST_CHUNK):
                found += [(m["path"], m["size"], m["e_tag"], m["last_modified"].timestamp())
                          for m in chunk]
        return found

    # -- the lease's needs (``lake.lease.LeaseStore``) -----------------------------------

    def put_object(self, location: ObjectPath, data: Any, only: IfMatch | None) -> str | None:
        body = data if isinstance(data, bytes) else bytes(data)  # obstore takes bytes
        with _Requests(location):
            done = obstore.put(self.client, location.key, body, mode=_mode(only),
                               use_multipart=False)
        return done["e_tag"]

    def get_object(self, location: ObjectPath) -> tuple[bytes, str | None, float]:
        with _Requests(location):
            got = obstore.get(self.client, location.key)
            return bytes(got.bytes()), got.meta["e_tag"], got.meta["last_modified"].timestamp()

    def store_now(self, near: ObjectPath) -> float:
        probe = ObjectPath(self.bucket, f"{near.key}.probe-{uuid.uuid4().hex}", near.scheme)
        with _Requests(probe):
            obstore.put(self.client, probe.key, b"", use_multipart=False)
            written = obstore.head(self.client, probe.key)["last_modified"].timestamp()
            obstore.delete(self.client, probe.key)
        return written

    def guard(self, lease: Lease | None, drop: Lease | None = None) -> None:
        with self._leases_lock:
            if lease is not None:
                self._leases.append(lease)
            if drop is not None and drop in self._leases:
                self._leases.remove(drop)

    def _check(self, location: Location) -> None:
        """Before a write: every lease this process holds on the lake of ``location``
        must still be held."""
        key = _key(location)
        for lease in list(self._leases):
            root = lease.lease_file.parent.parent.key
            if not root or key.startswith(f"{root}/"):
                lease.check()


class _RangedFile:
    """obstore's ranged reader as the file object pyarrow wraps (``pa.PythonFile``)."""

    def __init__(self, reader: Any, location: Location) -> None:
        self.reader = reader
        self.location = location
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        with _Requests(_object(self.location)):
            return bytes(self.reader.read(size) if size >= 0 else self.reader.read())

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self.reader.seek(offset, whence))

    def tell(self) -> int:
        return int(self.reader.tell())

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self.reader.close()
        self.closed = True


def _object(location: Location) -> ObjectPath:
    if not isinstance(location, ObjectPath):
        raise TypeError(f"{location} is not an object-store location")
    return location


# -- configuration -----------------------------------------------------------------------


def _endpoint() -> str | None:
    return os.environ.get(ENDPOINT_ENV) or None


def _region() -> str:
    return (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1")


def _client_config() -> dict[str, Any]:
    """obstore's S3Store arguments from the environment (credentials: its own chain,
    or boto3's for a profile)."""
    config: dict[str, Any] = {"region": _region()}
    client: dict[str, Any] = {"connect_timeout": dt.timedelta(seconds=5),
                              "timeout": dt.timedelta(seconds=60)}
    endpoint = _endpoint()
    if endpoint is not None:
        config["endpoint"] = endpoint
        client["allow_http"] = endpoint.startswith("http://")
    provider = _profile_credentials()
    if provider is not None:
        config["credential_provider"] = provider
    return {**config, "client_options": client,
            "retry_config": {"max_retries": 3, "retry_timeout": dt.timedelta(seconds=20)}}


def _wants_profile() -> bool:
    """Credentials from a profile (``AWS_PROFILE``, or ``~/.aws`` and no key in the
    environment) rather than obstore's own chain."""
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        return False
    home = os.path.expanduser("~/.aws/credentials")
    return bool(os.environ.get("AWS_PROFILE")) or os.path.exists(home)


def _profile_credentials() -> Any:
    if not _wants_profile():
        return None
    try:
        import boto3
        from obstore.auth.boto3 import Boto3CredentialProvider
    except ImportError:
        raise UserError("AWS_PROFILE / ~/.aws credentials need boto3 (pip install boto3), "
                        "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
    try:
        return Boto3CredentialProvider(boto3.Session())
    except ValueError:
        raise UserError("no AWS credentials found for the profile: set "
                        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE") from None


_STORES: dict[str, ObjectStore] = {}
_STORES_LOCK = threading.Lock()


def store_for(bucket: str) -> ObjectStore:
    """The store of ``bucket`` in this process (made once)."""
    with _STORES_LOCK:
        found = _STORES.get(bucket)
        if found is None:
            found = _STORES[bucket] = ObjectStore(bucket)
        return found
