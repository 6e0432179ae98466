"""Tests for the fault gateway, proxying to a real granian server on loopback."""

from __future__ import annotations

import asyncio
import io
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import h2.config
import h2.connection
import h2.events
import httpx
import pycurl
import pytest

from hyperlake.emulator.config import RESET_MARKER, WS_DROP_FRAME
from hyperlake.emulator.gateway import (
    FLAG_PADDED,
    FRAME_DATA,
    FaultGateway,
    GatewayConfig,
    _encode_frame,
    _FrameSplitter,
    _StreamResets,
    encode_goaway,
    encode_rst_stream,
    encode_window_update,
    scan_for_marker,
)
from hyperlake.emulator.server import granian_app

REPO_ROOT = Path(__file__).resolve().parents[2]
BODY = b'{"ok":true}'
PARTIAL = b'{"partial":'
AFTER_MARKER = 30_000  # bytes /marked-then-more sends after the marker
RSGI_APP = """\
import asyncio

from hyperlake.emulator.config import RESET_MARKER

PARTIAL = b'{"partial":'


async def app(scope, proto):
    if scope.path == "/slow":
        await asyncio.sleep(0.3)
    if scope.path.startswith("/marked"):
        await marked(scope.path, proto)
        return
    proto.response_bytes(200, [("content-type", "application/json")], b'{"ok":true}')


async def marked(path, proto):
    \"\"\"A response the gateway must reset where RESET_MARKER is.\"\"\"
    headers = [("content-type", "application/json"), ("content-length", "100000")]
    transport = proto.response_stream(200, headers)
    if path == "/marked":
        await transport.send_bytes(PARTIAL)
        await transport.send_bytes(RESET_MARKER)
    elif path == "/marked-split":
        await transport.send_bytes(PARTIAL + RESET_MARKER[:10])
        await asyncio.sleep(0.05)
        await transport.send_bytes(RESET_MARKER[10:])
    elif path == "/marked-then-more":
        await transport.send_bytes(RESET_MARKER)
        await transport.send_bytes(b"x" * 30_000)
"""


@pytest.fixture(scope="module")
def upstream_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A granian RSGI server answering every request with BODY."""
    app_dir = tmp_path_factory.mktemp("granian_app")
    (app_dir / "app.py").write_text(RSGI_APP)
    with granian_app(app_dir, "app:app") as port:
        yield port


class RunningGateway:
    """A FaultGateway serving from its own event loop in a background thread."""

    def __init__(self, config: GatewayConfig) -> None:
        self.gateway = FaultGateway(config)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stats(self) -> dict[str, int]:
        return dict(self.gateway.stats)

    def __enter__(self) -> RunningGateway:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.gateway.start(), self._loop).result(5)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self.gateway.close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def _config(port: int, **rates: float) -> GatewayConfig:
    seed = int(rates.pop("seed", 0))
    return GatewayConfig(upstream_host="127.0.0.1", upstream_port=port, seed=seed, **rates)


def _curl_h2c(handle: pycurl.Curl, url: str) -> tuple[int, bytes, int]:
    buffer = io.BytesIO()
    handle.setopt(pycurl.URL, url)
    handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE)
    handle.setopt(pycurl.WRITEDATA, buffer)
    handle.setopt(pycurl.TIMEOUT, 5)
    handle.perform()
    status: int = handle.getinfo(pycurl.RESPONSE_CODE)
    version: int = handle.getinfo(pycurl.INFO_HTTP_VERSION)
    return status, buffer.getvalue(), version


async def _gather_h2c(url: str, count: int) -> list[httpx.Response | BaseException]:
    async with httpx.AsyncClient(http1=False, http2=True, timeout=5) as client:
        return await asyncio.gather(
            *(client.get(url) for _ in range(count)), return_exceptions=True
        )


# 1. pass-through


def test_http1_requests_pass_through(upstream_port: int) -> None:
    with RunningGateway(_config(upstream_port)) as gateway, httpx.Client(timeout=5) as client:
        for _ in range(200):
            response = client.get(gateway.url)
            assert response.status_code == 200
            assert response.content == BODY
            assert response.http_version == "HTTP/1.1"
        stats = gateway.stats()
    assert stats["responses"] == 200
    assert stats["resets"] == stats["goaways"] == 0


def test_h2c_requests_pass_through_curl(upstream_port: int) -> None:
    with RunningGateway(_config(upstream_port)) as gateway:
        handle = pycurl.Curl()
        try:
            for _ in range(200):
                assert _curl_h2c(handle, gateway.url) == (200, BODY, pycurl.CURL_HTTP_VERSION_2_0)
        finally:
            handle.close()
        stats = gateway.stats()
    assert stats["connections"] == 1  # curl reused one h2c connection for everything
    assert stats["responses"] == 200


def test_h2c_concurrent_streams_pass_through_httpx(upstream_port: int) -> None:
    with RunningGateway(_config(upstream_port)) as gateway:
        results = asyncio.run(_gather_h2c(gateway.url, 200))
        stats = gateway.stats()
    for result in results:
        assert isinstance(result, httpx.Response), result
        assert (result.status_code, result.content, result.http_version) == (200, BODY, "HTTP/2")
    assert stats["responses"] == 200


def test_h2c_survives_client_bytes_split_at_every_boundary(upstream_port: int) -> None:
    """The preface alone, then every frame byte by byte: frames must be reassembled."""
    with RunningGateway(_config(upstream_port)) as gateway:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                              (":authority", "gateway")], end_stream=True)  # fmt: skip
        data = conn.data_to_send()
        body = b""
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw:
            raw.sendall(data[:24])  # the client preface on its own
            time.sleep(0.05)
            for index in range(24, len(data)):
                raw.sendall(data[index : index + 1])
            ended = False
            while not ended:
                received = raw.recv(65536)
                assert received, "gateway closed the connection"
                for event in conn.receive_data(received):
                    if isinstance(event, h2.events.DataReceived):
                        body += event.data
                    ended = ended or isinstance(event, h2.events.StreamEnded)
                raw.sendall(conn.data_to_send())
        assert body == BODY
        assert gateway.stats()["responses"] == 1


def test_frame_splitter_reassembles_frames_fed_byte_by_byte() -> None:
    stream = encode_goaway(7) + encode_goaway(9, error_code=11)
    splitter = _FrameSplitter()
    completed = b""
    headers = []
    for index in range(len(stream)):
        chunk, frames = splitter.feed(stream[index : index + 1])
        completed += chunk
        headers += [(frame.type, frame.stream_id, frame.end - frame.start) for frame in frames]
    assert completed == stream
    assert headers == [(0x7, 0, 17), (0x7, 0, 17)]
    assert splitter.take_partial() == b""


# 2. reset


def test_reset_fails_http1_request_with_tcp_rst(upstream_port: int) -> None:
    with RunningGateway(_config(upstream_port, reset_rate=1.0)) as gateway:
        with pytest.raises(httpx.TransportError):
            httpx.get(gateway.url, timeout=5)
        # At socket level the failure is a real RST, not an orderly FIN.
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            with pytest.raises(ConnectionResetError):
                while chunk := raw.recv(65536):
                    received += chunk
        assert not received.endswith(BODY)
        stats = gateway.stats()
    assert stats["resets"] == 2


def test_reset_fails_h2c_request(upstream_port: int) -> None:
    with RunningGateway(_config(upstream_port, reset_rate=1.0)) as gateway:
        handle = pycurl.Curl()
        try:
            with pytest.raises(pycurl.error):
                _curl_h2c(handle, gateway.url)
        finally:
            handle.close()
        (result,) = asyncio.run(_gather_h2c(gateway.url, 1))
        assert isinstance(result, httpx.TransportError), result
        stats = gateway.stats()
    assert stats["resets"] == 2
    assert stats["goaways"] == 0


# 2b. stream resets asked for by the server (RESET_MARKER)


def _h2c_exchange(port: int, paths: list[str]) -> list[h2.events.Event]:
    """Open one stream per path on one h2c connection and read until each has ended or
    been reset. Never acknowledges received data, so it never sends WINDOW_UPDATE."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    events: list[h2.events.Event] = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        conn.initiate_connection()
        streams = set()
        for path in paths:
            stream_id = conn.get_next_available_stream_id()
            conn.send_headers(stream_id, [(":method", "GET"), (":path", path),
                                          (":scheme", "http"), (":authority", "gateway")],
                              end_stream=True)  # fmt: skip
            streams.add(stream_id)
        raw.sendall(conn.data_to_send())
        while streams:
            data = raw.recv(65536)
            assert data, "gateway closed the connection"
            for event in conn.receive_data(data):
                events.append(event)
                if isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    streams.discard(event.stream_id)
            raw.sendall(conn.data_to_send())
    return events


def _stream_data(events: list[h2.events.Event], stream_id: int) -> bytes:
    return b"".join(e.data for e in events
                    if isinstance(e, h2.events.DataReceived) and e.stream_id == stream_id)


def test_h2c_marker_becomes_rst_stream_while_another_stream_completes(
    upstream_port: int,
) -> None:
    with RunningGateway(_config(upstream_port)) as gateway:
        events = _h2c_exchange(gateway.port, ["/slow", "/marked"])  # streams 1 and 3
        stats = gateway.stats()

    finished = [(type(e).__name__, e.stream_id) for e in events
                if isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset))]
    assert finished == [("StreamReset", 3), ("StreamEnded", 1)]  # /slow answers later
    (reset,) = [e for e in events if isinstance(e, h2.events.StreamReset)]
    assert reset.error_code == 2  # INTERNAL_ERROR
    assert _stream_data(events, 3) == PARTIAL  # the bytes before the marker, no more
    assert _stream_data(events, 1) == BODY
    assert stats["stream_resets"] == 1
    assert stats["resets"] == stats["goaways"] == 0


def test_h2c_marker_split_over_two_frames_still_resets(upstream_port: int) -> None:
    with RunningGateway(_config(upstream_port)) as gateway:
        events = _h2c_exchange(gateway.port, ["/marked-split", "/"])
        stats = gateway.stats()

    assert [e.stream_id for e in events if isinstance(e, h2.events.StreamReset)] == [1]
    assert _stream_data(events, 1) in (PARTIAL, PARTIAL + RESET_MARKER[:10])
    assert _stream_data(events, 3) == BODY
    assert stats["stream_resets"] == 1


def test_h2c_bytes_dropped_after_a_marker_are_given_back_to_the_server(
    upstream_port: int,
) -> None:
    """Each /marked-then-more costs the server's connection window 30 kB the client never
    sees (and so never acknowledges). Unless the gateway returns them, the server runs
    out of window after two such streams and the later ones never get their reset."""
    paths = ["/marked-then-more"] * 6 + ["/"]
    with RunningGateway(_config(upstream_port)) as gateway:
        events = _h2c_exchange(gateway.port, paths)
        stats = gateway.stats()

    assert [e.stream_id for e in events if isinstance(e, h2.events.StreamReset)] == [
        1, 3, 5, 7, 9, 11]  # fmt: skip
    assert _stream_data(events, 13) == BODY
    assert stats["stream_resets"] == 6


def test_http1_marker_resets_the_connection_after_the_bytes_before_it(
    upstream_port: int,
) -> None:
    with RunningGateway(_config(upstream_port)) as gateway:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{gateway.url}marked", timeout=5)
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw:
            raw.sendall(b"GET /marked-split HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            with pytest.raises(ConnectionResetError):
                while chunk := raw.recv(65536):
                    received += chunk
        stats = gateway.stats()
    assert received.startswith(b"HTTP/1.1 200 ")
    assert received.endswith((PARTIAL, PARTIAL + RESET_MARKER[:10]))
    assert stats["marker_resets"] == 2
    assert stats["resets"] == 0


@pytest.mark.parametrize("split", range(len(RESET_MARKER) + 1))
def test_scan_finds_a_marker_split_anywhere(split: int) -> None:
    first = b"abc" + RESET_MARKER[:split]
    second = RESET_MARKER[split:] + b"xyz"

    scan = scan_for_marker(b"", first, 0, len(first))
    if split == len(RESET_MARKER):
        assert scan.cut == 3
        return
    assert scan.cut is None
    assert scan.carry == RESET_MARKER[:split]
    assert scan_for_marker(scan.carry, second, 0, len(second)).cut == 0


@pytest.mark.parametrize("split", range(len(WS_DROP_FRAME) + 1))
def test_scan_finds_the_websocket_drop_frame_split_anywhere(split: int) -> None:
    text_frame = b"\x81\x05hello"  # frames begin with the marker's first byte
    first = text_frame + WS_DROP_FRAME[:split]
    second = WS_DROP_FRAME[split:] + text_frame

    scan = scan_for_marker(b"", first, 0, len(first), WS_DROP_FRAME)
    if split == len(WS_DROP_FRAME):
        assert scan.cut == len(text_frame)
        return
    assert scan.cut is None
    assert scan.carry == WS_DROP_FRAME[:split]
    assert scan_for_marker(scan.carry, second, 0, len(second), WS_DROP_FRAME).cut == 0


def test_scan_ignores_nul_bytes_that_begin_no_marker() -> None:
    data = b"\x00\x00abc\x00hyper"
    scan = scan_for_marker(b"", data, 0, len(data))
    assert (scan.cut, scan.carry) == (None, b"\x00hyper")
    assert tuple(scan_for_marker(scan.carry, b"LAKE", 0, 4)) == (None, b"")


def test_a_padded_data_frame_is_cut_before_the_marker_and_its_bytes_returned() -> None:
    data = b"0123456789" + RESET_MARKER + b"rest"
    padding = 7
    payload = bytes([padding]) + data + b"\0" * padding
    chunk = encode_goaway(0) + _encode_frame(FRAME_DATA, FLAG_PADDED, 5, payload)
    _, (_, frame) = _FrameSplitter().feed(chunk)
    stats = {"stream_resets": 0}
    resets = _StreamResets(stats)

    replacement = resets.rewrite(frame, chunk)

    assert replacement == _encode_frame(FRAME_DATA, 0, 5, b"0123456789") + encode_rst_stream(5)
    assert resets.owns(5)  # no END_STREAM yet: later frames of stream 5 are dropped
    assert resets.take_window_update() == encode_window_update(0, len(payload) - 10)
    assert resets.take_window_update() == b""
    assert stats["stream_resets"] == 1


# 3. goaway


def test_goaway_fails_concurrent_h2c_requests(upstream_port: int) -> None:
    with RunningGateway(_config(upstream_port, goaway_rate=1.0)) as gateway:
        results = asyncio.run(_gather_h2c(gateway.url, 20))
        stats = gateway.stats()
    assert stats["goaways"] > 0
    assert stats["resets"] == 0
    # Every response start draws GOAWAY, so no stream is ever answered: the GOAWAY
    # carries last-stream-id 0 and httpx surfaces it as RemoteProtocolError.
    failures = [result for result in results if isinstance(result, BaseException)]
    assert failures, "a GOAWAY before any response must fail the requests"
    assert all(isinstance(failure, httpx.RemoteProtocolError) for failure in failures)


def test_goaway_is_ignored_on_http1(upstream_port: int) -> None:
    with RunningGateway(_config(upstream_port, goaway_rate=1.0)) as gateway:
        assert httpx.get(gateway.url, timeout=5).content == BODY
        assert gateway.stats()["goaways"] == 0


class RawH2Client:
    """Just enough of an h2c client to observe GOAWAY's last-stream-id exactly."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.opened: list[int] = []
        self.completed: set[int] = set()
        self.goaway: h2.events.ConnectionTerminated | None = None
        self._flush()

    def _flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def request(self, count: int) -> None:
        """Open ``count`` streams at once and read until all end or GOAWAY arrives."""
        batch = []
        for _ in range(count):
            stream_id = self.conn.get_next_available_stream_id()
            headers = [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                       (":authority", "gateway")]  # fmt: skip
            self.conn.send_headers(stream_id, headers, end_stream=True)
            batch.append(stream_id)
        self.opened += batch
        self._flush()
        while self.goaway is None and not self.completed.issuperset(batch):
            data = self.sock.recv(65536)
            assert data, "connection closed without GOAWAY"
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.StreamEnded):
                    self.completed.add(event.stream_id)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    self.goaway = event
            if self.goaway is None:
                self._flush()

    def expected_last_stream_id(self) -> int:
        answered = 0
        for stream_id in self.opened:
            if stream_id not in self.completed:
                break
            answered = stream_id
        return answered

    def read_until_closed(self) -> bytes:
        """Everything after GOAWAY; raises ConnectionResetError if the close is not clean."""
        rest = b""
        while chunk := self.sock.recv(65536):
            rest += chunk
        self.sock.close()
        return rest


def test_goaway_last_stream_id_covers_exactly_the_answered_streams(upstream_port: int) -> None:
    last_stream_ids = []
    for seed in range(6):
        with RunningGateway(_config(upstream_port, seed=seed, goaway_rate=0.4)) as gateway:
            client = RawH2Client(gateway.port)
            for batch_size in (1, 3, 3, 3, 3, 3, 3, 3, 3, 3):
                client.request(batch_size)
                if client.goaway is not None:
                    break
            goaway = client.goaway
            assert goaway is not None, f"seed {seed}: no GOAWAY within {len(client.opened)} streams"
            assert goaway.error_code == 0
            assert goaway.last_stream_id == client.expected_last_stream_id()
            assert max(client.opened) > goaway.last_stream_id  # some stream must retry
            assert client.read_until_closed() == b""  # orderly FIN, no frames after GOAWAY
            assert gateway.stats()["goaways"] == 1
        last_stream_ids.append(goaway.last_stream_id)
    assert any(last_stream_ids), "expected at least one GOAWAY after answered streams"


def test_httpx_retries_streams_above_last_stream_id(upstream_port: int) -> None:
    """The first response is forwarded, the second draws GOAWAY(last-stream-id=1), and
    the responses after that are forwarded. httpx replays the streams it had in flight
    above last-stream-id on a new connection. (Requests whose HEADERS httpx had not yet
    sent when it processed the GOAWAY fail with RemoteProtocolError instead: httpcore
    does not retry those.)"""

    async def first_then_concurrent(url: str) -> list[httpx.Response | BaseException]:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=5) as client:
            first = await client.get(url)
            rest = await asyncio.gather(
                *(client.get(url) for _ in range(10)), return_exceptions=True
            )
            return [first, *rest]

    goaway_rate = 0.2
    seed = _seed_with_goaway_draws(goaway_rate, [False, True] + [False] * 10)
    with RunningGateway(_config(upstream_port, seed=seed, goaway_rate=goaway_rate)) as gateway:
        first, *rest = asyncio.run(first_then_concurrent(gateway.url))
        stats = gateway.stats()
    assert isinstance(first, httpx.Response) and first.content == BODY
    retried = [result for result in rest if isinstance(result, httpx.Response)]
    failed = [result for result in rest if not isinstance(result, httpx.Response)]
    assert retried, "the stream that drew GOAWAY was in flight and must have been retried"
    for response in retried:
        assert response.content == BODY
        first_connection = first.extensions["network_stream"]
        assert response.extensions["network_stream"] is not first_connection
    assert all(isinstance(failure, httpx.RemoteProtocolError) for failure in failed), failed
    assert stats["goaways"] == 1
    assert stats["connections"] == 2
    assert stats["responses"] == 2 + len(retried)


def _seed_with_goaway_draws(goaway_rate: float, pattern: list[bool]) -> int:
    """A seed whose successive GOAWAY draws (with reset_rate 0) come out as ``pattern``.

    Relies on the documented draw order: per h2c response, one draw for reset, then
    one for GOAWAY."""
    for seed in range(100_000):
        rng = random.Random(seed)
        draws = []
        for _ in pattern:
            rng.random()  # the reset draw
            draws.append(rng.random() < goaway_rate)
        if draws == pattern:
            return seed
    raise AssertionError("no seed found")


# 4. determinism


def _outcomes_with_fresh_connections(url: str, count: int) -> list[bool]:
    outcomes = []
    # No keep-alive: every request opens (and closes) its own connection.
    with httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        for _ in range(count):
            try:
                outcomes.append(client.get(url).content == BODY)
            except httpx.TransportError:
                outcomes.append(False)
    return outcomes


def test_same_seed_gives_same_fault_pattern(upstream_port: int) -> None:
    patterns = []
    for _ in range(2):
        config = _config(upstream_port, seed=1234, reset_rate=0.5)
        with RunningGateway(config) as gateway:
            patterns.append(_outcomes_with_fresh_connections(gateway.url, 30))
            stats = gateway.stats()
            assert stats["connections"] == 30
            assert stats["resets"] == patterns[-1].count(False)
    assert patterns[0] == patterns[1]
    assert True in patterns[0] and False in patterns[0]
    with RunningGateway(_config(upstream_port, seed=4321, reset_rate=0.5)) as gateway:
        assert _outcomes_with_fresh_connections(gateway.url, 30) != patterns[0]


# 5. command line


def _run_cli(*args: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "hyperlake.emulator.gateway", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, env=_cli_env()
    )


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.mark.parametrize(
    "bad_args",
    [["--reset-rate", "1.5"], ["--goaway-rate", "-0.1"], ["--reset-rate", "nan"]],
)
def test_cli_rejects_rates_outside_unit_interval(bad_args: list[str]) -> None:
    result = _run_cli("--upstream", "127.0.0.1:9", *bad_args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "between 0 and 1" in lines[0]


def test_cli_serves_and_exits_cleanly_on_sigterm(upstream_port: int, tmp_path: Path) -> None:
    port_file = tmp_path / "gateway.port"
    command = [
        sys.executable, "-m", "hyperlake.emulator.gateway", "--upstream",
        f"127.0.0.1:{upstream_port}", "--seed", "3", "--port-file", str(port_file),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
        env=_cli_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "port file never appeared"
            time.sleep(0.02)
        text = port_file.read_text()
        assert text.endswith("\n")
        port = int(text)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).content == BODY
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert stdout == f"listening 127.0.0.1:{port}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["gateway.port"]  # no temp file left
