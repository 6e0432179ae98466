"""One writer per lake on an object store: a lease object with an expiry.

An object store has no ``flock`` and nothing dies with a process, so the writer lock of
an ``s3://`` lake is an object, ``_state/writer.lease`` (JSON: holder id, host, pid,
command, ttl, renewals, released), kept by conditional writes only:

- **acquire**: create it (``If-None-Match: *``). If it exists, read it and judge it on
  the *store's* clock — its ``Last-Modified`` against that of a probe object written
  just now — so no client's clock matters. Released, or not renewed for ``ttl`` seconds
  (its holder died): take it over (``If-Match`` the version read; of two runs doing so
  at once, one wins). Otherwise ``LakeBusy`` (exit 3), naming the holder in one line.
- **renew**: a thread rewrites it every ``ttl/3`` (``If-Match`` the version this run
  wrote last). When that fails because the object changed, the lease was taken over:
  the run has lost it (``LeaseLost``, exit 3). A renewal that cannot reach the store is
  retried; the run may go on committing only until ``0.8 * ttl`` after the start of its
  last successful renewal (a local monotonic deadline: no clock is compared).
- **check**: before every write through the store (``lake.s3`` calls it), so a run whose
  lease is lost, or may have lapsed, stops committing at once.
- **release**: a conditional rewrite with ``released: true`` (obstore has no
  conditional delete, and a marker says the same).

``HYPERLAKE_LEASE_TTL`` sets the ttl in seconds (default 30; short in tests).

**Grants.** Processes the run did not start as the lease's holder (a Dwellir worker; a
task of ``hyperlake backfill`` on a Dask worker) commit under the run's ``LeaseGrant``:
picklable (the store's client is re-made from the environment where it is unpickled),
it reads the lease object before each commit and raises ``LeaseLost`` once the lease
no longer names its holder id, or was released. As with the flock's grant, a commit
already past its check when the lease changes hands can still land: it is a whole
object named for what it covers, which the next run counts as done.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import orjson

from hyperlake.errors import UserError
from hyperlake.lake.lock import (
    GrantRevoked,
    LakeBusy,
    WorkerHold,
    held_lock,
    note_held,
    note_released,
)
from hyperlake.lake.store import IF_ABSENT, Conflict, IfMatch, ObjectPath, StoreError

LEASE_TTL_ENV = "HYPERLAKE_LEASE_TTL"
DEFAULT_TTL_S = 30.0
#: Share of the ttl a holder may go on committing after its last successful renewal
#: began (the rest is margin for a slow request and the store's 1 s clock).
VALID_SHARE = 0.8


class LeaseLost(GrantRevoked):
    """This run no longer holds the lake's lease: it stops before committing more (what
    it committed stays; the next run fetches the rest)."""

    exit_code = 3


@dataclass(frozen=True)
class Seen:
    """A lease object as read: its content, its version, when the store wrote it."""

    info: dict[str, Any]
    version: str | None
    written: float  # the store's clock, epoch seconds


class LeaseStore(Protocol):
    """What a lease needs of its object store (``lake.s3.ObjectStore``)."""

    def put_object(self, location: ObjectPath, data: bytes, only: IfMatch | None) -> str | None:
        """Write without the store's lease check; the new version. Conflict when
        ``only`` fails; FileNotFoundError when ``only`` names a version of a missing
        object."""
        ...

    def get_object(self, location: ObjectPath) -> tuple[bytes, str | None, float]:
        """(data, version, written on the store's clock); FileNotFoundError if missing."""
        ...

    def store_now(self, near: ObjectPath) -> float:
        """The store's clock now (a probe object's ``Last-Modified``)."""
        ...

    def guard(self, lease: Lease | None, drop: Lease | None = None) -> None:
        """Check ``lease`` before each write (or stop checking ``drop``)."""
        ...


def ttl_from_env() -> float:
    """The lease's ttl in seconds: $HYPERLAKE_LEASE_TTL (at least 1), else 30."""
    text = os.environ.get(LEASE_TTL_ENV, "").strip()
    if not text:
        return DEFAULT_TTL_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UserError(f"${LEASE_TTL_ENV}={text!r}: not a number of seconds (e.g. 30)")
    return max(1.0, value)


def read_lease(store: LeaseStore, lease_file: ObjectPath) -> Seen | None:
    """The lease object, or None when there is none (or it cannot be parsed)."""
    try:
        data, version, written = store.get_object(lease_file)
    except FileNotFoundError:
        return None
    try:
        info = orjson.loads(data)
    except orjson.JSONDecodeError:
        info = {}
    return Seen(info if isinstance(info, dict) else {}, version, written)


def lease_holder(store: LeaseStore, lease_file: ObjectPath) -> str | None:
    """The holder id of the lake's current (unreleased) lease, from any process; None
    when it was released or never taken."""
    seen = read_lease(store, lease_file)
    if seen is None or seen.info.get("released"):
        return None
    holder = seen.info.get("holder")
    return holder if isinstance(holder, str) else None


def describe(info: dict[str, Any]) -> str:
    """``host H pid P: command`` of a lease's holder."""
    return (f"host {info.get('host', '?')} pid {info.get('pid', '?')}: "
            f"{info.get('command') or 'hyperlake'}")


@dataclass(frozen=True)
class LeaseGrant:
    """The authority to commit for the run holding the lease, in another process."""

    store: LeaseStore
    lease_file: ObjectPath
    holder: str

    def check(self) -> None:
        current = lease_holder(self.store, self.lease_file)
        if current == self.holder:
            return
        now = "no run holds it now" if current is None else "another run holds it now"
        raise LeaseLost(f"run {self.holder[:12]} no longer holds the lake's lease "
                        f"{self.lease_file} ({now}); stopping before committing more (what "
                        "was committed stays; the next run fetches the rest)")

    def adopt(self) -> LeaseGrant:
        return self


class Lease:
    """The lease of ``lease_file``, held by this process (re-entrant within it)."""

    def __init__(self, store: LeaseStore, lease_file: ObjectPath) -> None:
        self.store = store
        self.lease_file = lease_file
        self.ttl_s = ttl_from_env()
        self.command = " ".join([os.path.basename(sys.argv[0]) or "python", *sys.argv[1:3]])
        self._holder: str | None = None
        self._version: str | None = None
        self._renewals = 0
        self._valid_until = 0.0  # monotonic
        self._lost: str | None = None
        self._shared: Lease | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()

    # -- the WriterLock API ---------------------------------------------------------------

    @property
    def holder(self) -> str:
        if self._shared is not None:
            return self._shared.holder
        if self._holder is None:
            raise RuntimeError(f"{self.lease_file} is not held by this process")
        return self._holder

    def acquire(self) -> None:
        current = held_lock(self.lease_file)
        if isinstance(current, Lease) and current is not self:
            self._shared = current
            return
        self._holder = uuid.uuid4().hex
        self._lost = None
        self._take()
        note_held(self.lease_file, self)
        self.store.guard(self)
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, daemon=True,
                                        name=f"lease-{self._holder[:8]}")
        self._thread.start()

    def release(self) -> None:
        if self._shared is not None:
            self._shared = None
            return
        if self._holder is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl_s)
        note_released(self.lease_file)
        self.store.guard(None, drop=self)
        if self._lost is None:
            # a conditional "released" marker: never clobbers a new holder's lease; taken
            # over meanwhile, or unreachable: it lapses after the ttl
            with contextlib.suppress(Conflict, FileNotFoundError, StoreError):
                self._write(IfMatch(self._version), released=True)
        self._holder = None

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def check(self) -> None:
        """Raise ``LeaseLost`` once this run may no longer commit."""
        if self._shared is not None:
            self._shared.check()
            return
        if self._lost is not None:
            raise LeaseLost(self._lost)
        if time.monotonic() >= self._valid_until:
            self._lost = (f"the lease {self.lease_file} was not renewed in time (the store "
                          "could not be reached); stopping before committing more")
            raise LeaseLost(self._lost)

    def grant(self) -> LeaseGrant:
        return LeaseGrant(self.store, self.lease_file, self.holder)

    def for_workers(self) -> WorkerHold:
        return self.grant()

    # -- the object -----------------------------------------------------------------------

    def _body(self, released: bool = False) -> bytes:
        return orjson.dumps({"v": 1, "holder": self._holder, "host": socket.gethostname(),
                             "pid": os.getpid(), "command": self.command, "ttl_s": self.ttl_s,
                             "renewals": self._renewals, "released": released})

    def _write(self, only: IfMatch, released: bool = False) -> None:
        with self._write_lock:
            started = time.monotonic()
            self._version = self.store.put_object(self.lease_file, self._body(released), only)
            self._valid_until = started + VALID_SHARE * self.ttl_s

    def _take(self) -> None:
        try:
            self._write(IF_ABSENT)
            return
        except Conflict:
            pass
        seen = read_lease(self.store, self.lease_file)
        if seen is None:  # gone meanwhile: try once more from the start
            self._write(IF_ABSENT)
            return
        age = self.store.store_now(self.lease_file) - seen.written
        ttl = float(seen.info.get("ttl_s", self.ttl_s))
        if not seen.info.get("released") and age < ttl:
            raise LakeBusy(
                f"another hyperlake run holds the lake {self.lease_file.parent.parent} "
                f"({describe(seen.info)}; renewed {age:.0f}s ago, lapses in "
                f"{max(0.0, ttl - age):.0f}s unless renewed); wait for it to finish or stop "
                "it, then run again")
        try:  # released, or lapsed: take it over unless another run did first
            self._write(IfMatch(seen.version))
        except (Conflict, FileNotFoundError):
            raise LakeBusy(f"another hyperlake run took over the lake "
                           f"{self.lease_file.parent.parent} first; run again later") from None

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self._renewals += 1
                self._write(IfMatch(self._version))
            except (Conflict, FileNotFoundError):
                self._lost = (f"the lease {self.lease_file} was taken over by another run "
                              "(this one was too slow to renew it); stopping before "
                              "committing more")
                return
            except StoreError:
                continue  # unreachable for now: check() stops commits at the deadline
