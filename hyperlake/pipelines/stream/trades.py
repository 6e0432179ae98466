"""Hyperliquid WebSocket frames → validated, columnar trade batches.

A ``trades`` frame is ``{"channel":"trades","data":[{coin, side, px, sz, time, hash,
tid, users}, …]}`` (see tests/fixtures/ws_messages_real.jsonl): numbers as decimal
strings, one coin per frame (a subscription is per coin), up to ~100 trades.

Speed: the usual trades frame is read by a native scanner (``_scan.c``, built at
install where a C compiler is found): one pass over the text that checks it as JSON
and writes the columns straight from it, with the frame's summary for the
aggregator and whether any tid comes twice; no trade object is made (:attr:`TradeBatch.records`
decodes them when someone stores trades). It declines anything unusual (an escape in
a string, a number sent as a JSON number, a key given twice…), and that frame, like
every frame without the scanner, goes to msgspec (:func:`parse_frame_general`), which
decodes straight into typed structs, checking every field in C (types, ``side`` in
{A, B}, prices and sizes finite and > 0, times and ids ≥ 0) and skipping ``users``
without building it. That decoder is lax (``strict=False``) because the wire sends
numbers as decimal strings: they become floats correctly rounded, the very double
``float(text)`` gives (checked by the tests), as the scanner's do; an integer sent as a
string is accepted. Either way the batch is columns, so dedupe and aggregation work
with C-level ``min``/``max``/``sum`` over lists instead of touching each trade in
Python. The scanner's answers equal msgspec's on recorded, generated and mutated
frames (tests/pipelines/stream/test_stream_scan.py); what it gains is measured by
scripts/bench_stream.py.

Exact volume: sizes have at most 8 decimals (a size is a multiple of 10**-szDecimals
and szDecimals ≤ 8 on every market), so a volume is an integer number of 10**-8 units
and the aggregator sums it as one. Summing the floats and rounding once is exact while
the total stays below :data:`FLOAT_SIZE_LIMIT` (2**23): each ``float(sz)`` errs by at
most 2**-53 relative, ``math.fsum`` and the scaling by 10**8 add one rounding each, so
``round(fsum(sizes) * 10**8)`` is within ``3 * 2**-53 * K < 1/2`` of the exact integer
``K`` whenever K < 2**53 / 6 (a total below ≈ 1.5e7; the limit keeps a wide margin).
A frame holding a single size at or above the limit carries exact integer ``units``
read from the decimal strings themselves. Cheaper still, and as exact for the usual
frame: the plain left-to-right float sum of n sizes is within ``g(n) = n·u / (1 - n·u)``
(u = 2**-53) relative of the exact decimal sum (each ``float(sz)`` within u of its
decimal, then n - 1 additions of positive terms, Higham's bound), and scaling adds one
rounding, so ``round(sum(sizes) * 10**8)`` is within ``g(n + 1)·K < 1/2`` of K while
``K < 2**52 / (n + 1)``; :data:`PLAIN_SUM_LIMIT` asks ``sum·(n + 2) < 2**50 / 10**8``,
four times inside that. Past it, ``fsum`` as above. ``units / 10**8`` (int / int, correctly
rounded) is then the double nearest the exact decimal sum: the very value
``float(v)`` gives for the exchange's candle ``v``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from math import fsum
from typing import Annotated, Any, Literal

import msgspec

from hyperlake.schemas.records import InvalidRecord

#: The text frame the server sends first on every connection (not JSON).
GREETING = "Websocket connection established."
#: Volumes are summed as integers of this many units per 1 (10**-8: szDecimals ≤ 8).
SIZE_SCALE = 10**8
#: Sums of sizes below this convert to exact units by one rounding (module docstring).
FLOAT_SIZE_LIMIT = float(2**23)
#: A plain sum of n sizes below this / (n + 2) converts the same way (module docstring).
PLAIN_SUM_LIMIT = 2**50 / SIZE_SCALE

_Positive = Annotated[float, msgspec.Meta(gt=0, le=sys.float_info.max)]  # no nan, no inf
_Natural = Annotated[int, msgspec.Meta(ge=0)]
_SNIPPET = 160
_GREETINGS = (GREETING, GREETING.encode())


class MalformedFrame(InvalidRecord):
    """A WebSocket frame that is not one of the documented shapes."""


class Trade(msgspec.Struct, frozen=True, gc=False):
    """One validated trade as the wire has it (``users`` is not kept)."""

    coin: str
    side: Literal["A", "B"]  # B: the buyer took liquidity; A: the seller did
    px: _Positive
    sz: _Positive
    time: _Natural  # exchange time, epoch ms
    hash: str
    tid: _Natural  # unique across assets


class _ExactSizeTrade(msgspec.Struct, frozen=True, gc=False):
    sz: str


#: What a run of trades contributes to one bucket: (time, tid, px of the opening trade,
#: time, tid, px of the closing trade, h, l, volume in 10**-8 units, n). A plain tuple
#: of numbers: built once per frame on the hot path, with nothing inside for the
#: garbage collector to follow (bars.py makes and merges them).
Summary = tuple[int, int, float, int, int, float, float, float, int, int]


@dataclass(slots=True)
class TradeBatch:
    """The trades of one frame (one coin), as parallel columns in frame order; treat
    it as read-only. ``ordered`` says ``times`` never decrease (as the server sends
    them), so the first and last trades are the earliest and latest. ``units`` (sizes
    in exact 10**-8 units) is only set for a frame with a size too big for the float
    path (module docstring). ``distinct`` is True when the tids are known to be all
    different (the native scanner checks; else whoever needs it does); ``summary`` is
    the whole batch's :data:`Summary`, when the native scanner made it (in time order
    only; a selection has none). :attr:`records` gives the validated trades (side, hash)
    for whoever stores them: decoded from the frame when first asked for, since the
    columns are all the bars need."""

    coin: str
    times: list[int]
    tids: list[int]
    px: list[float]
    sz: list[float]
    ordered: bool
    total: float  # sum(sz) as the plain left-to-right float sum gives it
    units: list[int] | None = None
    # what is known of the columns (hints: they do not take part in ==)
    distinct: bool = field(default=False, compare=False)  # no tid twice (False: unknown)
    summary: Summary | None = field(default=None, compare=False, repr=False)
    # where records come from: given, or the frame's trades (those at ``picked``)
    decoded: list[Trade] | None = field(default=None, repr=False, compare=False)
    frame: bytes | str = field(default="", repr=False, compare=False)
    picked: list[int] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.tids)

    @property
    def records(self) -> list[Trade]:
        """The batch's trades as validated records, in column order."""
        if self.decoded is None:
            trades = _trades_of(self.frame)
            picked = self.picked
            self.decoded = trades if picked is None else [trades[i] for i in picked]
        return self.decoded

    def select(self, indices: list[int]) -> TradeBatch:
        """The trades at ``indices`` (distinct positions, in that order) as a batch of
        their own; it keeps ``distinct`` and has no ``summary``."""
        units, decoded, picked = self.units, self.decoded, self.picked
        times = [self.times[i] for i in indices]
        sizes = [self.sz[i] for i in indices]
        return TradeBatch(self.coin, times, [self.tids[i] for i in indices],
                          [self.px[i] for i in indices], sizes, _ordered(times), sum(sizes),
                          None if units is None else [units[i] for i in indices],
                          self.distinct, None,
                          None if decoded is None else [decoded[i] for i in indices],
                          self.frame,
                          indices if picked is None else [picked[i] for i in indices])

    @classmethod
    def of(cls, records: list[Trade]) -> TradeBatch:
        """A batch of validated trades of one coin, not read from a frame (so sizes
        must be below FLOAT_SIZE_LIMIT: there is no decimal text to read them from)."""
        if records and max(t.sz for t in records) >= FLOAT_SIZE_LIMIT:
            raise ValueError(f"sizes from {FLOAT_SIZE_LIMIT:.0f} up need their decimal text")
        return _batch(records, "")

    @property
    def earliest(self) -> int:
        return self.times[0] if self.ordered else min(self.times)

    @property
    def latest(self) -> int:
        return self.times[-1] if self.ordered else max(self.times)


def _ordered(times: list[int]) -> bool:
    return len(times) < 2 or times == sorted(times)


# -- the other frames -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Greeting:
    """The plain-text hello the server sends when a connection opens."""


class SubscriptionAck(msgspec.Struct, frozen=True):
    """``subscriptionResponse``: the server accepted a (un)subscribe request."""

    method: str  # "subscribe" | "unsubscribe"
    subscription: dict[str, Any]


class Pong(msgspec.Struct, frozen=True, tag_field="channel", tag="pong"):
    """The answer to ``{"method":"ping"}``."""


class ServerError(msgspec.Struct, frozen=True):
    """``error``: the server refused a request (the text says why)."""

    message: str


class CandleUpdate(msgspec.Struct, frozen=True):
    """``candle``: the exchange's own view of a bar (open or closed; no flag says)."""

    t: _Natural
    t_close: _Natural = msgspec.field(name="T")
    coin: str = msgspec.field(name="s")
    interval: str = msgspec.field(name="i")
    o: _Positive
    c: _Positive
    h: _Positive
    l: _Positive  # noqa: E741 - the wire's name
    v: Annotated[float, msgspec.Meta(ge=0, le=sys.float_info.max)]
    n: _Natural


@dataclass(frozen=True, slots=True)
class OtherChannel:
    """A well-formed frame of a channel this module does not interpret (bbo, l2Book…)."""

    channel: str


Frame = TradeBatch | SubscriptionAck | Pong | ServerError | CandleUpdate | Greeting | OtherChannel


# -- decoding ---------------------------------------------------------------------


class _Trades(msgspec.Struct, frozen=True, gc=False, tag_field="channel", tag="trades"):
    data: list[Trade]


class _ExactSizes(msgspec.Struct, frozen=True, gc=False):
    data: list[_ExactSizeTrade]


class _Ack(msgspec.Struct, frozen=True, tag_field="channel", tag="subscriptionResponse"):
    data: SubscriptionAck


class _Error(msgspec.Struct, frozen=True, tag_field="channel", tag="error"):
    data: str


class _Candle(msgspec.Struct, frozen=True, tag_field="channel", tag="candle"):
    data: CandleUpdate


class _Envelope(msgspec.Struct, frozen=True):
    channel: str


_Columns = tuple[str, list[int], list[int], list[float], list[float], bool, float, bool,
                 Summary | None]


def _native_scanner() -> Callable[[bytes | str], _Columns | None] | None:
    """The native scanner (_scan.c), built where the install found a C compiler."""
    try:
        from hyperlake.pipelines.stream._scan import scan_trades
    except ImportError:  # pragma: no cover - installed without a compiler
        return None
    return scan_trades


_scan_trades = _native_scanner()
#: Whether trade frames are read by the native scanner (else by msgspec alone).
NATIVE_SCANNER = _scan_trades is not None

_Known = _Trades | _Ack | Pong | _Error | _Candle
_KNOWN: msgspec.json.Decoder[_Known] = msgspec.json.Decoder(_Known, strict=False)
_ENVELOPE = msgspec.json.Decoder(_Envelope)
_EXACT_SIZES = msgspec.json.Decoder(_ExactSizes)


def parse_frame(frame: bytes | str) -> Frame:
    """What one WebSocket text frame says. Raises MalformedFrame for anything that is
    neither the greeting nor a JSON object of a documented shape. The usual trades
    frame is read by the native scanner (_scan.c) when it is built; the scanner
    declines anything unusual, and :func:`parse_frame_general` reads that."""
    if _scan_trades is not None:
        columns = _scan_trades(frame)
        if columns is not None:
            return _scanned(frame, *columns)
    return parse_frame_general(frame)


def parse_frame_general(frame: bytes | str) -> Frame:
    """:func:`parse_frame` by msgspec alone: every shape, every error message. The
    native scanner's answers must equal this function's (the tests check)."""
    try:
        message = _KNOWN.decode(frame)
    except msgspec.DecodeError as exc:
        if frame in _GREETINGS:
            return Greeting()
        return _other_channel(frame, exc)
    if isinstance(message, _Trades):
        return _batch(message.data, frame)
    if isinstance(message, _Ack):
        return message.data
    if isinstance(message, _Error):
        return ServerError(message.data)
    if isinstance(message, _Candle):
        return message.data
    return message


def _other_channel(frame: bytes | str, error: msgspec.DecodeError) -> OtherChannel:
    """A frame the typed decoder refused: fine if it is some other channel's."""
    try:
        channel = _ENVELOPE.decode(frame).channel
    except msgspec.DecodeError:
        channel = None
    if channel is None or channel in ("trades", "subscriptionResponse", "pong", "error",
                                      "candle"):
        raise MalformedFrame(f"malformed websocket frame ({error}): {_snippet(frame)}") from None
    return OtherChannel(channel)


def _snippet(frame: bytes | str) -> str:
    text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"


def _batch(records: list[Trade], frame: bytes | str) -> TradeBatch:
    count = len(records)
    if count == 1:  # common on a quiet market: skip the column machinery
        t = records[0]
        return TradeBatch(t.coin, [t.time], [t.tid], [t.px], [t.sz], True, t.sz,
                          _exact_units_if_big(frame, [t.sz], t.sz), True, None, records)
    if not count:
        return TradeBatch("", [], [], [], [], True, 0.0, None, True, None, records)
    coin = records[0].coin
    times = [t.time for t in records if t.coin == coin]  # one pass: times, one coin
    if len(times) != count:
        raise MalformedFrame(f"trades of several coins in one frame: {_snippet(frame)}")
    sizes = [t.sz for t in records]
    total = sum(sizes)
    return TradeBatch(coin, times, [t.tid for t in records], [t.px for t in records], sizes,
                      times == sorted(times), total, _exact_units_if_big(frame, sizes, total),
                      False, None, records)


def _scanned(frame: bytes | str, coin: str, times: list[int], tids: list[int],
             px: list[float], sz: list[float], ordered: bool, total: float,
             distinct: bool, summary: Summary | None) -> TradeBatch:
    """The batch of a frame the native scanner read (its records decoded on demand)."""
    return TradeBatch(coin, times, tids, px, sz, ordered, total,
                      _exact_units_if_big(frame, sz, total), distinct, summary, None, frame)


def _exact_units_if_big(frame: bytes | str, sizes: list[float], total: float) -> list[int] | None:
    """Every size in exact units, read from the frame's text, when one of them is too
    big for the float path (module docstring); else None. ``total`` (their sum) is ≥
    every size, so a small one spares the look at each."""
    if total >= FLOAT_SIZE_LIMIT and max(sizes) >= FLOAT_SIZE_LIMIT:
        return _exact_sizes(frame)
    return None


def _trades_of(frame: bytes | str) -> list[Trade]:
    """The validated trades of a frame already read once (so it is a trades frame)."""
    message = _KNOWN.decode(frame)
    assert isinstance(message, _Trades)
    return message.data


def size_units(sizes: Sequence[float], total: float | None = None) -> int:
    """The exact sum of ``sizes`` (each < FLOAT_SIZE_LIMIT) in 10**-8 units (module
    docstring): one rounding of their plain sum (``total``, when the caller has it)
    while that is small enough for their count, else of their ``fsum`` while that is
    below the limit, else one rounding per size."""
    if total is None:
        total = sum(sizes)
    if total * (len(sizes) + 2) < PLAIN_SUM_LIMIT:
        return round(total * SIZE_SCALE)
    total = fsum(sizes)
    if total < FLOAT_SIZE_LIMIT:
        return round(total * SIZE_SCALE)
    return sum([round(size * SIZE_SCALE) for size in sizes])


def _exact_sizes(frame: bytes | str) -> list[int]:
    try:
        records = _EXACT_SIZES.decode(frame).data
    except msgspec.DecodeError as exc:
        raise MalformedFrame(f"sizes are not decimal strings ({exc}): {_snippet(frame)}") from None
    return [exact_units(t.sz) for t in records]


def exact_units(size: str) -> int:
    """A plain decimal string (at most 8 decimals) in units of 10**-8, exactly."""
    whole, _, fraction = size.partition(".")
    if len(fraction) > 8 or not whole.isdigit() or not (fraction.isdigit() or not fraction):
        raise MalformedFrame(f"size is not a decimal with at most 8 decimals: {size!r}")
    return int(whole) * SIZE_SCALE + int(fraction.ljust(8, "0") or "0")
