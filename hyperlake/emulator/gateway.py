"""Fault gateway: a TCP proxy that injects connection-level faults in front of an HTTP server.

Why this exists
---------------
The emulator serves HTTP through granian, a Rust server. Granian is a well-behaved
server: there is no way to ask it to abort a connection with a TCP RST halfway through
a response, or to send an HTTP/2 GOAWAY frame on demand. Those are exactly the faults
that client retry logic must survive, so this module puts a small asyncio proxy in
front of the server and produces them itself.

The gateway speaks cleartext HTTP/1.1 and h2c with prior knowledge (it detects the
HTTP/2 client preface). It never decodes HPACK and never rewrites or drops
HEADERS/CONTINUATION frames (the HPACK state is shared by the whole connection); it only
splits the byte streams into frames so that it can stop forwarding at a frame boundary,
inject frames, and cut DATA frames at a reset marker (below).

Fault decisions
---------------
One decision is taken per response seen from upstream: for h2c, at the first HEADERS
frame of each stream; for HTTP/1.1, at each chunk read from upstream that starts with
``b"HTTP/1.1 "``. Each decision draws ``rng.random() < reset_rate`` and, on h2c
connections that were not reset, ``rng.random() < goaway_rate``, where ``rng`` is one
``random.Random(seed)`` per gateway; so a given seed and request sequence always
produce the same faults.

* ``reset``: forward the start of the response (the HTTP/1.1 status line, or the
  frames up to and including the opening HEADERS frame on h2c unless it ends the
  stream), then close the client socket with ``SO_LINGER (1, 0)`` so the kernel sends
  a real TCP RST.
* ``goaway``: forward the frames before the opening HEADERS frame, send
  ``GOAWAY(last_stream_id=S, NO_ERROR)`` where ``S`` is the highest client stream id
  such that every client stream with an id up to ``S`` has had its response fully
  forwarded, then close cleanly (FIN). Streams above ``S`` never see any more frames,
  so for the client they were not processed and may be retried (RFC 9113, section
  6.8). The upstream server may still have started work on them; the gateway only
  guarantees what the client observed.

Stream resets asked for by the server
-------------------------------------
granian cannot reset one HTTP/2 stream on request, so the emulator's app writes
``RESET_MARKER`` (``hyperlake.emulator.config``) into a response body instead, and the
gateway resets the stream there (faults ``stream_reset``, ``truncated``, ``timeout``):

* h2c: the DATA frame holding the marker is replaced by a DATA frame with the bytes
  before the marker (if any; padding dropped, no END_STREAM) and
  ``RST_STREAM(INTERNAL_ERROR)``; later frames of that stream are dropped, except
  header blocks (trailers), which must reach the client to keep HPACK in step. The
  bytes the client will never see are returned to the server's connection flow-control
  window with a WINDOW_UPDATE, so that resets do not slowly stall the connection. Other
  streams of the connection go on. Counted in ``stats["stream_resets"]``.
* HTTP/1.1: the bytes before the marker are forwarded, then the client connection is
  aborted with a TCP RST (a response cut mid-body). Counted in ``stats["marker_resets"]``.

A marker split over two DATA frames (or reads) is still found; the bytes of it already
forwarded then reach the client just before the reset.

WebSockets
----------
An HTTP/1.1 response ``101 Switching Protocols`` turns the connection into a plain byte
pipe in both directions (no more fault draws: the upgrade response was the one
response). The emulator's ``ws_drop`` fault writes ``WS_DROP_FRAME`` (a text frame
holding RESET_MARKER) into the stream; the gateway forwards the bytes before that
frame, then aborts the client connection with a TCP RST, so the client sees the socket
die without a close frame. Counted in ``stats["ws_drops"]``.

Run ``python -m hyperlake.emulator.gateway --help`` for the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import enum
import os
import random
import signal
import socket
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from hyperlake.emulator.config import RESET_MARKER, WS_DROP_FRAME

H2_CLIENT_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HTTP1_RESPONSE_START = b"HTTP/1.1 "
HTTP1_SWITCHING_PROTOCOLS = b"HTTP/1.1 101 "

FRAME_DATA = 0x0
FRAME_HEADERS = 0x1
FRAME_RST_STREAM = 0x3
FRAME_GOAWAY = 0x7
FRAME_WINDOW_UPDATE = 0x8
FRAME_CONTINUATION = 0x9
FLAG_END_STREAM = 0x1
FLAG_PADDED = 0x8
H2_NO_ERROR = 0x0
H2_INTERNAL_ERROR = 0x2

FRAME_HEADER_SIZE = 9
_FRAME_HEADER = struct.Struct(">BHBBI")  # 24-bit length as 8 + 16 bits, type, flags, stream id
_STREAM_ID_MASK = 0x7FFF_FFFF

READ_SIZE = 64 * 1024
# How long to keep reading (and discarding) client input after our FIN, so that the
# client has time to read what we sent before we close. Closing a socket with unread
# input makes the kernel send an RST, which could destroy a GOAWAY in flight.
LINGER_SECONDS = 2.0

STAT_NAMES = ("connections", "responses", "resets", "goaways", "stream_resets",
              "marker_resets", "ws_drops")


@dataclass(frozen=True)
class GatewayConfig:
    """Where to forward to and how often to inject each fault."""

    upstream_host: str
    upstream_port: int
    seed: int = 0
    reset_rate: float = 0.0
    goaway_rate: float = 0.0

    def __post_init__(self) -> None:
        _require_probability("reset_rate", self.reset_rate)
        _require_probability("goaway_rate", self.goaway_rate)


def _require_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")


class _Fault(enum.Enum):
    NONE = "none"
    RESET = "reset"
    GOAWAY = "goaway"


class _Outcome(enum.Enum):
    """Why the upstream-to-client pump stopped."""

    UPSTREAM_CLOSED = "upstream closed"
    RESET = "reset"
    GOAWAY = "goaway"


class _Frame(NamedTuple):
    """One complete HTTP/2 frame, located by offsets in the chunk it was parsed from."""

    type: int
    flags: int
    stream_id: int
    start: int
    end: int

    @property
    def ends_stream(self) -> bool:
        return self.type in (FRAME_DATA, FRAME_HEADERS) and bool(self.flags & FLAG_END_STREAM)

    @property
    def payload_length(self) -> int:
        return self.end - self.start - FRAME_HEADER_SIZE


class _FrameSplitter:
    """Splits a byte stream into whole HTTP/2 frames, buffering a partial frame across reads."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> tuple[bytes, list[_Frame]]:
        """Return the bytes of all frames completed by ``data`` and their headers."""
        buffer = self._pending + data if self._pending else data
        frames: list[_Frame] = []
        offset = 0
        size = len(buffer)
        while size - offset >= FRAME_HEADER_SIZE:
            length_high, length_low, frame_type, flags, stream_id = _FRAME_HEADER.unpack_from(
                buffer, offset
            )
            end = offset + FRAME_HEADER_SIZE + (length_high << 16 | length_low)
            if end > size:
                break
            frames.append(_Frame(frame_type, flags, stream_id & _STREAM_ID_MASK, offset, end))
            offset = end
        self._pending = buffer[offset:]
        return buffer[:offset], frames

    def take_partial(self) -> bytes:
        """Hand back the buffered bytes of an incomplete frame (used at end of stream)."""
        partial, self._pending = self._pending, b""
        return partial


def _encode_frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    header = _FRAME_HEADER.pack(
        len(payload) >> 16, len(payload) & 0xFFFF, frame_type, flags, stream_id & _STREAM_ID_MASK
    )
    return header + payload


def encode_goaway(last_stream_id: int, error_code: int = H2_NO_ERROR) -> bytes:
    """Encode an HTTP/2 GOAWAY frame (always on stream 0)."""
    payload = struct.pack(">II", last_stream_id & _STREAM_ID_MASK, error_code)
    return _encode_frame(FRAME_GOAWAY, 0, 0, payload)


def encode_rst_stream(stream_id: int, error_code: int = H2_INTERNAL_ERROR) -> bytes:
    return _encode_frame(FRAME_RST_STREAM, 0, stream_id, struct.pack(">I", error_code))


def encode_window_update(stream_id: int, increment: int) -> bytes:
    return _encode_frame(FRAME_WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


class MarkerScan(NamedTuple):
    """Where a body piece holds RESET_MARKER."""

    cut: int | None  # bytes of the piece to forward before the reset; None: no marker
    carry: bytes  # tail of the piece that may begin a marker, to pass with the next piece


def scan_for_marker(carry: bytes, buffer: bytes, start: int, end: int,
                    marker: bytes = RESET_MARKER) -> MarkerScan:
    """Look for ``marker`` in ``buffer[start:end]``, a piece of a body that follows
    ``carry`` (the ``carry`` of the previous piece's scan, b"" for the first)."""
    if carry:  # rare: JSON never holds a NUL byte, which every marker prefix starts with
        window = carry + buffer[start:end]
        scan = scan_for_marker(b"", window, 0, len(window), marker)
        return scan if scan.cut is None else MarkerScan(max(0, scan.cut - len(carry)), b"")
    at = buffer.find(marker, start, end)
    if at >= 0:
        return MarkerScan(at - start, b"")
    return MarkerScan(None, _marker_head_at_end(buffer, start, end, marker))


def _marker_head_at_end(buffer: bytes, start: int, end: int, marker: bytes) -> bytes:
    """The longest tail of ``buffer[start:end]`` that is a proper prefix of ``marker``."""
    at = buffer.find(marker[:1], max(start, end - len(marker) + 1), end)
    while at >= 0:
        if marker.startswith(buffer[at:end]):
            return buffer[at:end]
        at = buffer.find(marker[:1], at + 1, end)
    return b""


def _data_bounds(chunk: bytes, frame: _Frame) -> tuple[int, int]:
    """Offsets in ``chunk`` of a DATA frame's data, without its padding."""
    start, end = frame.start + FRAME_HEADER_SIZE, frame.end
    if frame.flags & FLAG_PADDED and end > start:
        end = max(start + 1, end - chunk[start])
        start += 1
    return start, end


class _StreamResets:
    """Turns RESET_MARKER in the upstream's DATA frames into RST_STREAM (one per h2c
    connection; see the module docstring)."""

    def __init__(self, stats: dict[str, int]) -> None:
        self._stats = stats
        self._carries: dict[int, bytes] = {}  # stream id -> a possible marker start
        self._reset: set[int] = set()  # reset towards the client, not yet ended upstream
        self._unacknowledged = 0  # flow-controlled bytes the client will never see

    def owns(self, stream_id: int) -> bool:
        """True for a stream this gateway reset and whose upstream side goes on."""
        return stream_id in self._reset

    def rewrite(self, frame: _Frame, chunk: bytes) -> bytes | None:
        """What to send the client instead of ``frame``, or None to forward it as is."""
        if frame.stream_id in self._reset:
            return self._after_reset(frame)
        if frame.type != FRAME_DATA:
            if frame.type == FRAME_RST_STREAM:
                self._carries.pop(frame.stream_id, None)
            return None
        start, end = _data_bounds(chunk, frame)
        scan = scan_for_marker(self._carries.pop(frame.stream_id, b""), chunk, start, end)
        if scan.cut is None:
            if scan.carry and not frame.ends_stream:
                self._carries[frame.stream_id] = scan.carry
            return None
        self._stats["stream_resets"] += 1
        if not frame.ends_stream:
            self._reset.add(frame.stream_id)
        self._unacknowledged += frame.payload_length - scan.cut
        kept = chunk[start : start + scan.cut]
        data = _encode_frame(FRAME_DATA, 0, frame.stream_id, kept) if kept else b""
        return data + encode_rst_stream(frame.stream_id)

    def _after_reset(self, frame: _Frame) -> bytes | None:
        if frame.ends_stream or frame.type == FRAME_RST_STREAM:
            self._reset.discard(frame.stream_id)
        if frame.type in (FRAME_HEADERS, FRAME_CONTINUATION):
            return None  # dropping a header block would desynchronise HPACK
        if frame.type == FRAME_DATA:
            self._unacknowledged += frame.payload_length
        return b""

    def take_window_update(self) -> bytes:
        """A connection WINDOW_UPDATE giving the server back what the client never got."""
        owed, self._unacknowledged = self._unacknowledged, 0
        return encode_window_update(0, owed) if owed else b""


class _Rewrite:
    """A run of frames with some of them replaced, assembled only when asked for."""

    def __init__(self, chunk: bytes) -> None:
        self._chunk = chunk
        self._pieces: list[bytes] = []
        self._copied_to = 0

    def replace(self, frame: _Frame, replacement: bytes) -> None:
        self._pieces += (self._chunk[self._copied_to : frame.start], replacement)
        self._copied_to = frame.end

    def up_to(self, offset: int) -> bytes:
        """The original bytes before ``offset``, with the replacements made before it."""
        if not self._pieces:
            return self._chunk[:offset]
        return b"".join([*self._pieces, self._chunk[self._copied_to : offset]])


class _StreamLedger:
    """Tracks which client streams exist and which have had their response fully forwarded."""

    def __init__(self) -> None:
        self._opened: list[int] = []  # ascending: client stream ids only ever increase
        self._unfinished: set[int] = set()
        self._responding: set[int] = set()

    def record_client_frame(self, frame: _Frame) -> None:
        if frame.type == FRAME_HEADERS and frame.stream_id % 2 == 1:
            self._open_client_stream(frame.stream_id)
        elif frame.type == FRAME_RST_STREAM:
            # A stream the client cancelled will not be retried by it, so it must not
            # hold back the GOAWAY last-stream-id forever.
            self._finish(frame.stream_id)

    def _open_client_stream(self, stream_id: int) -> None:
        # Trailers arrive as a second HEADERS frame on an already known stream.
        if not self._opened or stream_id > self._opened[-1]:
            self._opened.append(stream_id)
            self._unfinished.add(stream_id)

    def opens_response(self, frame: _Frame) -> bool:
        """True for the first upstream HEADERS frame of a stream (not trailers)."""
        return (
            frame.type == FRAME_HEADERS
            and frame.stream_id != 0
            and frame.stream_id not in self._responding
        )

    def record_forwarded_upstream_frame(self, frame: _Frame) -> None:
        if frame.type == FRAME_HEADERS:
            self._responding.add(frame.stream_id)
        if frame.ends_stream or frame.type == FRAME_RST_STREAM:
            self._finish(frame.stream_id)

    def record_reset(self, stream_id: int) -> None:
        """The gateway reset the stream towards the client: it is finished for the client."""
        self._finish(stream_id)

    def _finish(self, stream_id: int) -> None:
        self._unfinished.discard(stream_id)
        self._responding.discard(stream_id)

    def last_fully_answered(self) -> int:
        """Highest client stream id S such that every stream with id <= S is finished."""
        if not self._unfinished:
            return self._opened[-1] if self._opened else 0
        below = bisect.bisect_left(self._opened, min(self._unfinished))
        return self._opened[below - 1] if below else 0


def _status_line_of(chunk: bytes) -> bytes:
    """The first line of an HTTP/1.1 response chunk: a strict prefix of any full response."""
    line_end = chunk.find(b"\r\n")
    return chunk if line_end < 0 else chunk[: line_end + 2]


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close the socket so that the kernel sends a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _ProxiedConnection:
    """One client connection and its dedicated upstream connection."""

    def __init__(
        self,
        gateway: FaultGateway,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self._gateway = gateway
        self._client_reader, self._client_writer = client
        self._upstream_reader, self._upstream_writer = upstream
        self._is_h2 = False
        self._upstream_gone = False
        self._ledger = _StreamLedger()
        self._stream_resets = _StreamResets(gateway.stats)
        self._client_task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            preamble = await self._read_client_preamble()
            if not preamble:
                return
            self._is_h2 = preamble.startswith(H2_CLIENT_PREFACE)
            self._client_task = asyncio.create_task(self._pump_client_to_upstream(preamble))
            if self._is_h2:
                outcome = await self._forward_h2_responses()
            else:
                outcome = await self._forward_http1_responses()
            if outcome is not _Outcome.RESET:
                await self._linger_until_client_closes()
        except (ConnectionError, OSError):
            pass  # one of the peers vanished; teardown below closes the other one
        finally:
            await self._teardown()

    async def _read_client_preamble(self) -> bytes:
        """Read until the data is known to be (or not to be) the HTTP/2 client preface."""
        data = b""
        while len(data) < len(H2_CLIENT_PREFACE) and H2_CLIENT_PREFACE.startswith(data):
            chunk = await self._client_reader.read(READ_SIZE)
            if not chunk:
                break
            data += chunk
        return data

    # client -> upstream

    async def _pump_client_to_upstream(self, preamble: bytes) -> None:
        # On h2c only whole frames are written, so that the other direction may inject
        # a frame (WINDOW_UPDATE) between any two writes.
        splitter = _FrameSplitter() if self._is_h2 else None
        try:
            if splitter is None:
                self._upstream_writer.write(preamble)
            else:
                self._upstream_writer.write(H2_CLIENT_PREFACE)
                self._forward_client_frames(splitter, preamble[len(H2_CLIENT_PREFACE) :])
            await self._upstream_writer.drain()
            while data := await self._client_reader.read(READ_SIZE):
                if self._upstream_gone:
                    continue  # lingering after GOAWAY or upstream close: discard input
                if splitter is None:
                    self._upstream_writer.write(data)
                else:
                    self._forward_client_frames(splitter, data)
                await self._upstream_writer.drain()
            if not self._upstream_gone:
                if splitter is not None:
                    self._upstream_writer.write(splitter.take_partial())
                if self._upstream_writer.can_write_eof():
                    self._upstream_writer.write_eof()
        except (ConnectionError, OSError):
            # Client or upstream vanished: make the other pump see end of stream.
            self._upstream_writer.transport.abort()

    def _forward_client_frames(self, splitter: _FrameSplitter, data: bytes) -> None:
        complete, frames = splitter.feed(data)
        for frame in frames:
            self._ledger.record_client_frame(frame)
        if complete:
            self._upstream_writer.write(complete)

    def _send_upstream_frame(self, frame: bytes) -> None:
        if frame and not self._upstream_gone:
            self._upstream_writer.write(frame)

    # upstream -> client

    async def _forward_http1_responses(self) -> _Outcome:
        carry = b""
        while chunk := await self._upstream_reader.read(READ_SIZE):
            starts_response = chunk.startswith(HTTP1_RESPONSE_START)
            if starts_response and self._gateway._draw_fault(allow_goaway=False) is _Fault.RESET:
                self._reset_client(_status_line_of(chunk))
                return _Outcome.RESET
            if chunk.startswith(HTTP1_SWITCHING_PROTOCOLS):
                return await self._forward_websocket(chunk)
            scan = scan_for_marker(carry, chunk, 0, len(chunk))
            if scan.cut is not None:
                self._reset_client(chunk[: scan.cut], stat="marker_resets")
                return _Outcome.RESET
            carry = scan.carry
            self._client_writer.write(chunk)
            await self._client_writer.drain()
        return _Outcome.UPSTREAM_CLOSED

    async def _forward_websocket(self, chunk: bytes) -> _Outcome:
        """Pass an upgraded connection's server bytes through (``chunk`` starts with the
        101 response) until the server ends it or writes WS_DROP_FRAME: then reset."""
        carry = b""
        while chunk:
            scan = scan_for_marker(carry, chunk, 0, len(chunk), WS_DROP_FRAME)
            if scan.cut is not None:
                self._reset_client(chunk[: scan.cut], stat="ws_drops")
                return _Outcome.RESET
            carry = scan.carry
            self._client_writer.write(chunk)
            await self._client_writer.drain()
            chunk = await self._upstream_reader.read(READ_SIZE)
        return _Outcome.UPSTREAM_CLOSED

    async def _forward_h2_responses(self) -> _Outcome:
        splitter = _FrameSplitter()
        while chunk := await self._upstream_reader.read(READ_SIZE):
            complete, frames = splitter.feed(chunk)
            output = _Rewrite(complete)
            for frame in frames:
                fault = self._decide_at(frame)
                if fault is _Fault.RESET:
                    keep_until = frame.start if frame.ends_stream else frame.end
                    self._reset_client(output.up_to(keep_until))
                    return _Outcome.RESET
                if fault is _Fault.GOAWAY:
                    await self._send_goaway(output.up_to(frame.start))
                    return _Outcome.GOAWAY
                self._forward_h2_frame(frame, complete, output)
            self._client_writer.write(output.up_to(len(complete)))
            self._send_upstream_frame(self._stream_resets.take_window_update())
            await self._client_writer.drain()
        self._client_writer.write(splitter.take_partial())
        return _Outcome.UPSTREAM_CLOSED

    def _forward_h2_frame(self, frame: _Frame, chunk: bytes, output: _Rewrite) -> None:
        replacement = self._stream_resets.rewrite(frame, chunk)
        if replacement is None:
            self._ledger.record_forwarded_upstream_frame(frame)
        else:
            output.replace(frame, replacement)
            self._ledger.record_reset(frame.stream_id)

    def _decide_at(self, frame: _Frame) -> _Fault:
        if self._stream_resets.owns(frame.stream_id) or not self._ledger.opens_response(frame):
            return _Fault.NONE  # (a header block of a reset stream opens no response)
        return self._gateway._draw_fault(allow_goaway=True)

    def _reset_client(self, partial_response: bytes, stat: str = "resets") -> None:
        self._gateway.stats[stat] += 1
        self._client_writer.write(partial_response)
        _abort_with_rst(self._client_writer)
        self._stop_upstream()

    async def _send_goaway(self, frames_before: bytes) -> None:
        self._gateway.stats["goaways"] += 1
        self._stop_upstream()
        last_stream_id = self._ledger.last_fully_answered()
        self._client_writer.write(frames_before + encode_goaway(last_stream_id))
        await self._client_writer.drain()

    # teardown

    def _stop_upstream(self) -> None:
        self._upstream_gone = True
        self._upstream_writer.transport.abort()

    async def _linger_until_client_closes(self) -> None:
        """Half-close towards the client and let it read everything before we close."""
        self._stop_upstream()
        if self._client_writer.can_write_eof() and not self._client_writer.is_closing():
            self._client_writer.write_eof()
        if self._client_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._client_task, LINGER_SECONDS)

    async def _teardown(self) -> None:
        self._upstream_writer.transport.abort()
        if self._client_task is not None:
            self._client_task.cancel()
            (result,) = await asyncio.gather(self._client_task, return_exceptions=True)
            if isinstance(result, Exception):
                raise result
        self._client_writer.close()


class FaultGateway:
    """Asyncio TCP proxy to one upstream HTTP server that injects RST and GOAWAY faults."""

    def __init__(self, config: GatewayConfig, host: str = "127.0.0.1") -> None:
        self.config = config
        self.host = host
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        self._rng = random.Random(config.seed)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Listen on ``host`` at an ephemeral port and return that port."""
        if self._server is not None:
            raise RuntimeError("gateway already started")
        self._server = await asyncio.start_server(self._serve_client, self.host, 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()

    def _draw_fault(self, *, allow_goaway: bool) -> _Fault:
        """Draw the fault for one response (see the module docstring for the draw order)."""
        self.stats["responses"] += 1
        if self._rng.random() < self.config.reset_rate:
            return _Fault.RESET
        if allow_goaway and self._rng.random() < self.config.goaway_rate:
            return _Fault.GOAWAY
        return _Fault.NONE

    async def _serve_client(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        self.stats["connections"] += 1
        # The proxying runs in a task of our own so that close() can cancel it without
        # cancelling the task asyncio.start_server created: on Python 3.11 that task's
        # done-callback calls task.exception(), which raises for a cancelled task.
        work = asyncio.create_task(self._proxy(client_reader, client_writer))
        self._connections.add(work)
        work.add_done_callback(self._connections.discard)
        await asyncio.wait({work})
        if not work.cancelled():
            work.result()  # re-raise unexpected errors so asyncio reports them

    async def _proxy(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream = await self._connect_upstream()
        except OSError:
            _abort_with_rst(client_writer)
            return
        except asyncio.CancelledError:
            client_writer.close()
            raise
        await _ProxiedConnection(self, (client_reader, client_writer), upstream).run()

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.config.upstream_host, self.config.upstream_port)


# command line


def _parse_host_port(text: str) -> tuple[str, int]:
    host, separator, port = text.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hyperlake.emulator.gateway",
        description=(
            "Proxy cleartext HTTP/1.1 and h2c (prior knowledge) to an upstream server, "
            "injecting TCP resets and HTTP/2 GOAWAY frames at a seeded, reproducible rate, "
            "and resetting responses where the upstream wrote hyperlake's reset marker. "
            "Serves until SIGTERM or SIGINT."
        ),
    )
    parser.add_argument(
        "--upstream",
        required=True,
        type=_parse_host_port,
        metavar="HOST:PORT",
        help="address of the HTTP server to forward to, e.g. 127.0.0.1:8000",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the fault RNG (default: %(default)s)"
    )
    parser.add_argument(
        "--reset-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="probability in [0, 1] that a response is cut by a TCP RST (default: %(default)s)",
    )
    parser.add_argument(
        "--goaway-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="probability in [0, 1] that an h2c response is replaced by GOAWAY "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--port-file",
        type=Path,
        metavar="PATH",
        help="atomically write the bound port (decimal and a newline) to this file",
    )
    return parser


def _write_port_file(path: Path, port: int) -> None:
    """Write the port so that readers never observe a partially written file."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as port_file:
            port_file.write(f"{port}\n")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


async def _serve_until_signalled(config: GatewayConfig, host: str, port_file: Path | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    gateway = FaultGateway(config, host=host)
    port = await gateway.start()
    try:
        if port_file is not None:
            _write_port_file(port_file, port)
        print(f"listening {host}:{port}", flush=True)
        await stop.wait()
    finally:
        await gateway.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    upstream_host, upstream_port = args.upstream
    try:
        _require_probability("--reset-rate", args.reset_rate)
        _require_probability("--goaway-rate", args.goaway_rate)
        config = GatewayConfig(
            upstream_host=upstream_host,
            upstream_port=upstream_port,
            seed=args.seed,
            reset_rate=args.reset_rate,
            goaway_rate=args.goaway_rate,
        )
    except ValueError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    return asyncio.run(_serve_until_signalled(config, args.host, args.port_file))


if __name__ == "__main__":
    sys.exit(main())
