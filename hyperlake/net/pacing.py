"""Token buckets: the one rate limiter, in memory or shared by every process.

``TokenBucket`` paces one process (a Dwellir worker's requests per second; the
emulator's budgets use it too). ``SharedWeightBudget`` is the same bucket kept in a
file: Hyperliquid allows 1200 weight per minute per IP address, not per process, so
two ``hyperlake`` commands running side by side must split one budget, or both get
429s. The file is read and rewritten under ``fcntl.flock`` on every reservation. A
missing or corrupt file simply means a full bucket, so deleting the folder is always
safe.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hyperlake.errors import UserError

#: Environment variable that moves the bucket files (e.g. to share them in a container).
PACING_DIR_ENV = "HYPERLAKE_PACING_DIR"

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_READABLE_NAME = 80


def safe_file_stem(name: str) -> str:
    """A file-name-safe, collision-free stem for a budget name.

    Keeps a readable sanitized prefix and appends a short hash of the exact name,
    so "host:80" and "host_80" do not share a bucket.
    """
    readable = _UNSAFE_CHARS.sub("_", name).strip("._")[:_MAX_READABLE_NAME] or "budget"
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{readable}-{digest}"


def _ensure_private_folder(folder: Path) -> None:
    """Create the folder 0o700 and refuse one another user planted (in /tmp, say)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise UserError(f"pacing folder {folder} is not a directory owned by you; "
                        f"set {PACING_DIR_ENV} to a private folder")


def default_pacing_folder() -> Path:
    """``$HYPERLAKE_PACING_DIR``, else a per-user folder in the temp directory."""
    configured = os.environ.get(PACING_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"hyperlake-pacing-{os.getuid()}"


def refill(tokens: float, elapsed: float, per_second: float, capacity: float) -> float:
    """Tokens after ``elapsed`` seconds at ``per_second``, never above ``capacity``
    (a clock stepping back refills nothing)."""
    return min(capacity, tokens + max(0.0, elapsed) * per_second)


class TokenBucket:
    """``capacity`` tokens, refilled at ``per_second``, in one process's memory.

    ``try_take`` takes only what is there; ``charge`` takes unconditionally (the
    balance may go negative, as Hyperliquid charges an answer's weight after it)."""

    def __init__(self, per_second: float, capacity: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.capacity = capacity
        self.tokens = capacity
        self._clock = clock
        self._updated = clock()

    def available(self) -> float:
        now = self._clock()
        self.tokens = refill(self.tokens, now - self._updated, self.per_second, self.capacity)
        self._updated = now
        return self.tokens

    def try_take(self, cost: float) -> bool:
        if self.available() < cost:
            return False
        self.tokens -= cost
        return True

    def charge(self, cost: float) -> None:
        self.tokens -= cost

    def wait_s(self, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are there (as of the last ``available``)."""
        return max(0.0, (cost - self.tokens) / self.per_second)


class InflightWindow:
    """How many requests may be in flight at once over a connection that may fail.

    HTTP/2 multiplexing keeps many requests in flight, which is what makes a
    one-candle-per-request archive fast — and what makes a dying connection expensive:
    a GOAWAY or a reset fails (and libcurl transparently re-sends) everything in
    flight, so at 10 % of answers ending a connection, 128 in flight cost ~7 times the
    requests and trip the plan ceiling. Like TCP's congestion window: additive
    increase (one more per window of successes), multiplicative decrease (halve on a
    connection-level failure). One dying connection fails everything that was in
    flight on it, so after a cut the failures of what was already in flight then are
    one event, not many. Without failures the window sits at the ceiling.
    """

    def __init__(self, ceiling: int) -> None:
        self.ceiling = max(1, ceiling)
        self.size = float(self.ceiling)
        self._same_event = 0  # completions still to come from before the last cut

    def room(self, active: int) -> int:
        """How many more may be sent now, with ``active`` in flight."""
        return max(0, int(self.size) - active)

    def completed(self, connection_failed: bool) -> None:
        """One request finished; ``connection_failed`` when its connection died."""
        if connection_failed and self._same_event <= 0:
            self._same_event = int(self.size)
            self.size = max(1.0, self.size / 2)
        elif not connection_failed:
            self.size = min(float(self.ceiling), self.size + 1.0 / self.size)
        self._same_event -= 1


def _encode_state(tokens: float, stamp: float) -> bytes:
    return f"{tokens!r} {stamp!r}\n".encode("ascii")


def _decode_state(raw: bytes) -> tuple[float, float] | None:
    """(tokens, timestamp), or None when the file is empty or corrupt."""
    try:
        tokens_text, stamp_text = raw.decode("ascii").split()
        tokens, stamp = float(tokens_text), float(stamp_text)
    except ValueError:  # UnicodeDecodeError is a ValueError too
        return None
    if not (math.isfinite(tokens) and math.isfinite(stamp)):
        return None
    return tokens, stamp


class SharedWeightBudget:
    """A token bucket of request weight, shared through a flock-guarded file."""

    def __init__(self, name: str, per_minute: float, *, folder: Path | None = None,
                 capacity: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        if capacity is not None and capacity <= 0:
            raise ValueError("capacity must be positive")
        self.name = name
        self.per_minute = float(per_minute)
        #: Largest burst; by default a full minute of budget, like the server allows.
        self.capacity = float(capacity if capacity is not None else per_minute)
        self._per_second = self.per_minute / 60.0
        self._clock = clock
        if folder is None:
            folder = default_pacing_folder()
        self.path = folder / f"{safe_file_stem(name)}.bucket"
        try:
            _ensure_private_folder(folder)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            raise UserError(f"pacing folder {folder}: {exc.strerror or exc}; set "
                            f"{PACING_DIR_ENV} to a writable folder of yours") from None

    def reserve(self, weight: float) -> float:
        """Take ``weight`` and return 0.0, or return the seconds until it would fit.

        Nothing is taken when the answer is not 0.0. A weight above capacity is
        granted from a full bucket (the balance then goes negative and later
        callers wait it out), so such a request is never refused forever.
        """
        self._check_weight(weight)
        needed = min(weight, self.capacity)
        with self._locked_state() as state:
            if state.tokens >= needed:
                state.tokens -= weight
                return 0.0
            return (needed - state.tokens) / self._per_second

    def acquire(self, weight: float, sleep: Callable[[float], None] = time.sleep) -> float:
        """Wait until ``weight`` is granted; returns the total seconds slept."""
        waited = 0.0
        while (pause := self.reserve(weight)) > 0.0:
            sleep(pause)
            waited += pause
        return waited

    def refund(self, weight: float) -> None:
        """Give back tokens reserved but not spent; never above capacity."""
        self._check_weight(weight)
        with self._locked_state() as state:
            state.tokens = min(self.capacity, state.tokens + weight)

    def charge(self, weight: float) -> None:
        """Take tokens unconditionally (the balance may go negative)."""
        self._check_weight(weight)
        with self._locked_state() as state:
            state.tokens -= weight

    def available(self) -> float:
        """Tokens in the bucket now (may be negative); for diagnostics and tests."""
        with self._locked_state() as state:
            return state.tokens

    @staticmethod
    def _check_weight(weight: float) -> None:
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weight must be a finite number >= 0, got {weight!r}")

    def _locked_state(self) -> _LockedBucket:
        return _LockedBucket(self.path, self._clock, self._refilled)

    def _refilled(self, stored: tuple[float, float] | None, now: float) -> float:
        """Tokens after refilling a stored state up to ``now``."""
        if stored is None:
            return self.capacity
        tokens, stamp = stored
        return refill(tokens, now - stamp, self._per_second, self.capacity)


class _LockedBucket:
    """Context manager: the bucket file opened, flock-ed, refilled; saved on exit."""

    def __init__(self, path: Path, clock: Callable[[], float],
                 refill: Callable[[tuple[float, float] | None, float], float]) -> None:
        self._path = path
        self._clock = clock
        self._refill = refill
        self._fd = -1
        self._now = 0.0
        self.tokens = 0.0

    def __enter__(self) -> _LockedBucket:
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._now = self._clock()
            stored = _decode_state(os.pread(self._fd, 256, 0))
            self.tokens = self._refill(stored, self._now)
        except BaseException:
            os.close(self._fd)  # closing also releases the lock
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            encoded = _encode_state(self.tokens, self._now)
            os.pwrite(self._fd, encoded, 0)
            os.ftruncate(self._fd, len(encoded))
        finally:
            os.close(self._fd)
