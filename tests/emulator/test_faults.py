"""Injected faults as a client sees them, on real emulators over loopback: canned
statuses, slow and held answers, truncated and malformed bodies, HTTP/2 stream resets,
the gateway's TCP resets and GOAWAYs, seeded rates and per-endpoint rules.

Every emulator here has the fault gateway in front of its HTTP URLs (it has fault rules,
or ``gateway=True``): the stream faults only become real resets through it."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import httpx
import orjson
import pytest

from hyperlake.emulator.config import FaultRule
from hyperlake.emulator.server import Emulator, frozen_config
from tests.conftest import DWELLIR_KEY, HYDROMANCER_KEY, NOW_MS

CANDLE_QUERY = {"market": "BTC", "interval": "1m", "time": "2026-03-30T23:00:00Z"}
CANDLE_PATH = (f"/dwellir/{DWELLIR_KEY}/v1/candles?market=BTC&interval=1m"
               "&time=2026-03-30T23:00:00Z")
META = {"type": "meta"}
HYDRO_BODY = {"type": "candleSnapshot", "req": {
    "coin": "BTC", "interval": "1m", "startTime": NOW_MS - 600_000, "endTime": NOW_MS}}

Starter = Callable[..., Emulator]


def dwellir_url(emu: Emulator) -> str:
    return f"{emu.urls.dwellir}/{DWELLIR_KEY}/v1/candles"


def get_candle(client: httpx.Client, emu: Emulator) -> httpx.Response:
    return client.get(dwellir_url(emu), params=CANDLE_QUERY)


def post_info(client: httpx.Client, emu: Emulator, body: Any = META) -> httpx.Response:
    return client.post(f"{emu.urls.hyperliquid}/info", json=body)


def post_hydromancer(client: httpx.Client, emu: Emulator) -> httpx.Response:
    return client.post(f"{emu.urls.hydromancer}/info", json=HYDRO_BODY,
                       headers={"Authorization": f"Bearer {HYDROMANCER_KEY}"})


def h1_client(timeout: float | httpx.Timeout = 5) -> httpx.Client:
    return httpx.Client(timeout=timeout)


def h2c_client(timeout: float | httpx.Timeout = 5) -> httpx.Client:
    """HTTP/2 over cleartext with prior knowledge."""
    return httpx.Client(http1=False, http2=True, timeout=timeout)


def with_faults(start: Starter, *rules: FaultRule, seed: int = 0) -> Emulator:
    return start(frozen_config(NOW_MS, faults=rules, fault_seed=seed))


def is_json(body: bytes) -> bool:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return True


@pytest.fixture(scope="module")
def faulty_server() -> Iterator[Emulator]:
    """One emulator for the in-server faults of this module, set per test, behind the
    fault gateway although it starts with no fault."""
    with Emulator(frozen_config(NOW_MS), gateway=True) as emu:
        yield emu


@pytest.fixture
def emu(faulty_server: Emulator) -> Iterator[Emulator]:
    """The module's emulator with no fault and zeroed counters; faults cleared after."""
    faulty_server.set_faults([])
    faulty_server.reset_stats()
    yield faulty_server
    faulty_server.set_faults([])


def inject(emu: Emulator, endpoint: str, kind: str, delay: float = 2.0) -> None:
    """Make every request to ``endpoint`` fail with ``kind``."""
    emu.set_faults([FaultRule(endpoint, kind, 1.0, delay)])


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with h1_client() as c:
        yield c


# -- canned answers ---------------------------------------------------------------------


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "h2c"])
def test_429_has_no_retry_after(emu: Emulator, http2: bool) -> None:
    inject(emu, "dwellir", "429")
    with h2c_client() if http2 else h1_client() as c:
        response = get_candle(c, emu)

    assert response.status_code == 429
    assert "retry-after" not in response.headers
    assert emu.stats()["fault_429"] == 1


def test_429_retry_after_says_one_second(emu: Emulator,
                                         client: httpx.Client) -> None:
    inject(emu, "dwellir", "429_retry_after")

    response = get_candle(client, emu)

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"


def test_500_on_dwellir_and_on_info(emu: Emulator, client: httpx.Client) -> None:
    inject(emu, "*", "500")

    dwellir = get_candle(client, emu)
    info = post_info(client, emu)

    assert dwellir.status_code == 500
    assert info.status_code == 500
    assert info.content == b"null"
    assert info.json() is None


def test_502_is_an_html_page(emu: Emulator, client: httpx.Client) -> None:
    inject(emu, "dwellir", "502")

    response = get_candle(client, emu)

    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.lstrip().lower().startswith("<html")
    assert not is_json(response.content)


def test_503(emu: Emulator, client: httpx.Client) -> None:
    inject(emu, "dwellir", "503")

    response = get_candle(client, emu)

    assert response.status_code == 503


def test_a_canned_fault_costs_no_budget(make_emulator: Starter, client: httpx.Client) -> None:
    emu = make_emulator(frozen_config(NOW_MS, hydromancer_weight_per_minute=100,
                                      faults=(FaultRule("hydromancer", "503", 1.0),)))

    faulted = [post_hydromancer(client, emu).status_code for _ in range(8)]
    emu.set_faults([])
    served = [post_hydromancer(client, emu).status_code for _ in range(6)]

    assert faulted == [503] * 8
    assert served == [200] * 5 + [429]  # the full budget of 5 requests was left


def hydromancer_status(client: httpx.Client, emu: Emulator) -> int | str:
    """The status, or "broken" when the transport failed."""
    try:
        return post_hydromancer(client, emu).status_code
    except httpx.TransportError:
        return "broken"


@pytest.mark.parametrize("kind", ["malformed", "truncated", "stream_reset"])
def test_a_body_fault_costs_no_budget(make_emulator: Starter, kind: str) -> None:
    emu = make_emulator(frozen_config(NOW_MS, hydromancer_weight_per_minute=100,
                                      faults=(FaultRule("hydromancer", kind, 1.0),)))
    with h1_client() as c:
        for _ in range(6):
            hydromancer_status(c, emu)
        emu.set_faults([])
        served = [hydromancer_status(c, emu) for _ in range(6)]

    assert served == [200] * 5 + [429]


# -- slow, timeout ----------------------------------------------------------------------


def test_slow_answers_normally_after_the_delay(emu: Emulator,
                                               client: httpx.Client) -> None:
    normal = get_candle(client, emu)
    inject(emu, "dwellir", "slow", 0.5)

    started = time.monotonic()
    response = get_candle(client, emu)
    elapsed = time.monotonic() - started

    assert elapsed >= 0.5
    assert response.status_code == 200
    assert response.json() == normal.json()


def test_timeout_holds_the_request_past_a_client_read_timeout(emu: Emulator) -> None:
    inject(emu, "dwellir", "timeout", 5.0)

    started = time.monotonic()
    with h1_client(httpx.Timeout(5, read=1)) as c, pytest.raises(httpx.ReadTimeout):
        get_candle(c, emu)

    assert 0.9 <= time.monotonic() - started < 4


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "h2c"])
def test_timeout_drops_the_request_after_the_delay(emu: Emulator,
                                                   http2: bool) -> None:
    inject(emu, "dwellir", "timeout", 0.3)

    started = time.monotonic()
    with h2c_client() if http2 else h1_client() as c, pytest.raises(httpx.TransportError):
        get_candle(c, emu)

    assert time.monotonic() - started >= 0.3


# -- truncated, malformed ---------------------------------------------------------------


def test_truncated_breaks_an_http1_client(emu: Emulator,
                                          client: httpx.Client) -> None:
    inject(emu, "dwellir", "truncated")

    with pytest.raises(httpx.TransportError):
        get_candle(client, emu)
    assert emu.stats()["fault_truncated"] == 1


def test_truncated_breaks_an_h2c_client(emu: Emulator) -> None:
    inject(emu, "dwellir", "truncated")

    # A real RST_STREAM, which httpx reports as RemoteProtocolError(StreamReset).
    with h2c_client() as c:
        for _ in range(3):  # on a fresh connection and on a reused one
            with pytest.raises(httpx.RemoteProtocolError, match="StreamReset"):
                get_candle(c, emu)


def test_truncated_sends_half_the_body_before_the_reset(emu: Emulator,
                                                         client: httpx.Client) -> None:
    normal = get_candle(client, emu).content
    inject(emu, "dwellir", "truncated")

    events = h2c_events(port_of(emu.urls.dwellir), CANDLE_PATH)

    (response,) = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    headers = {str(name): str(value) for name, value in response.headers}
    assert headers["content-length"] == str(len(normal))
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert body == normal[: len(normal) // 2]
    assert isinstance(events[-1], h2.events.StreamReset)


@pytest.mark.parametrize("endpoint", ["dwellir", "info"])
def test_malformed_is_a_200_that_is_not_json(emu: Emulator, client: httpx.Client,
                                             endpoint: str) -> None:
    inject(emu, endpoint, "malformed")

    response = get_candle(client, emu) if endpoint == "dwellir" else post_info(client, emu)

    assert response.status_code == 200
    assert response.content
    assert not is_json(response.content)


# -- HTTP/2 stream reset ----------------------------------------------------------------


def h2c_events(port: int, path: str) -> list[h2.events.Event | Exception]:
    """One h2c GET on a fresh connection: the events until the stream ends or is reset
    (a protocol error h2 raises is the last item)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                header_encoding="utf-8"))
    events: list[h2.events.Event | Exception] = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "GET"), (":path", path), (":scheme", "http"),
                              (":authority", f"127.0.0.1:{port}")], end_stream=True)
        sock.sendall(conn.data_to_send())
        while data := sock.recv(65536):
            try:
                received = conn.receive_data(data)
            except h2.exceptions.ProtocolError as exc:
                return [*events, exc]
            events += received
            if any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset,
                                  h2.events.ConnectionTerminated)) for e in received):
                return events
            sock.sendall(conn.data_to_send())
    return events


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def test_stream_reset_breaks_an_h2c_client(emu: Emulator) -> None:
    inject(emu, "dwellir", "stream_reset")

    # httpx raises RemoteProtocolError for a stream the server reset
    with h2c_client() as c, pytest.raises(httpx.RemoteProtocolError, match="StreamReset"):
        get_candle(c, emu)


def test_stream_reset_breaks_an_http1_client(emu: Emulator, client: httpx.Client) -> None:
    inject(emu, "dwellir", "stream_reset")

    with pytest.raises(httpx.TransportError):  # the connection is reset after the headers
        get_candle(client, emu)


@pytest.mark.parametrize("kind", ["stream_reset", "truncated", "timeout"])
def test_aborted_h2c_streams_are_reset(emu: Emulator, kind: str) -> None:
    inject(emu, "dwellir", kind, delay=0.1)

    events = h2c_events(port_of(emu.urls.dwellir), CANDLE_PATH)

    resets = [e for e in events if isinstance(e, h2.events.StreamReset)]
    assert [(r.stream_id, r.error_code) for r in resets] == [(1, 2)], events  # INTERNAL_ERROR
    assert not any(isinstance(e, h2.events.StreamEnded) for e in events)


def test_server_is_healthy_after_stream_resets_are_cleared(emu: Emulator) -> None:
    inject(emu, "dwellir", "stream_reset")
    with h2c_client() as c:
        for _ in range(3):
            with pytest.raises(httpx.RemoteProtocolError, match="StreamReset"):
                get_candle(c, emu)
        emu.set_faults([])
        healthy = get_candle(c, emu)

    assert healthy.status_code == 200
    assert healthy.json()["t"] == 1_774_911_600_000
    assert emu.stats()["fault_stream_reset"] == 3


def test_without_the_gateway_a_stream_fault_is_a_short_body(emu: Emulator) -> None:
    """Straight to the server (``urls.control``, the TLS port, or gateway=False), a
    stream fault is a body cut short of its Content-Length, not a reset."""
    inject(emu, "dwellir", "truncated")

    with h1_client() as direct, pytest.raises(httpx.RemoteProtocolError):
        direct.get(f"{emu.urls.control}{CANDLE_PATH}")


def test_the_gateway_is_in_front_only_with_faults(make_emulator: Starter) -> None:
    plain = make_emulator()
    faulty = with_faults(make_emulator, FaultRule("dwellir", "503", 0.5))

    assert port_of(plain.urls.dwellir) == port_of(plain.urls.control) == plain.port
    assert port_of(faulty.urls.dwellir) != faulty.port
    assert port_of(faulty.urls.control) == faulty.port


# -- gateway faults: TCP reset, GOAWAY --------------------------------------------------


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "h2c"])
def test_reset_is_a_connection_error_though_the_server_answered(make_emulator: Starter,
                                                                http2: bool) -> None:
    emu = with_faults(make_emulator, FaultRule("dwellir", "reset", 1.0))

    for _ in range(3):
        with h2c_client() if http2 else h1_client() as c, pytest.raises(httpx.TransportError):
            get_candle(c, emu)

    # the server itself answered every one of them; the gateway cut them off
    assert emu.stats()["dwellir_status_200"] == 3
    with h1_client() as direct:
        assert direct.get(f"{emu.urls.control}{CANDLE_PATH}").status_code == 200


def test_a_dwellir_reset_rule_leaves_info_alone(make_emulator: Starter) -> None:
    emu = with_faults(make_emulator, FaultRule("dwellir", "reset", 1.0))

    with h1_client() as c:
        assert post_info(c, emu).status_code == 200
        assert post_hydromancer(c, emu).status_code == 200
        with pytest.raises(httpx.TransportError):
            get_candle(c, emu)


def test_goaway_over_h2c_refuses_the_stream(make_emulator: Starter) -> None:
    emu = with_faults(make_emulator, FaultRule("*", "goaway", 1.0))
    port = port_of(emu.urls.dwellir)

    events = h2c_events(port, CANDLE_PATH)

    terminated = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert len(terminated) == 1
    assert terminated[0].error_code == 0  # NO_ERROR
    assert terminated[0].last_stream_id == 0  # stream 1 was not processed: retryable
    assert not any(isinstance(e, h2.events.ResponseReceived) for e in events)


def test_goaway_fails_h2c_requests_but_not_http1(make_emulator: Starter) -> None:
    emu = with_faults(make_emulator, FaultRule("*", "goaway", 1.0))

    with h2c_client() as c:
        for _ in range(3):
            with pytest.raises(httpx.RemoteProtocolError, match="ConnectionTerminated"):
                get_candle(c, emu)  # each attempt on a new connection, each refused
    with h1_client() as c:
        statuses = [get_candle(c, emu).status_code for _ in range(3)]

    assert statuses == [200] * 3
    assert emu.stats()["dwellir_requests"] == 6  # the refused ones still reached it


# -- rates and determinism --------------------------------------------------------------


def status_sequence(emu: Emulator, count: int = 300) -> list[int]:
    with h1_client() as c:
        return [get_candle(c, emu).status_code for _ in range(count)]


def test_a_seeded_rate_is_honoured_and_reproducible(emu: Emulator,
                                                    make_emulator: Starter) -> None:
    rule = FaultRule.parse("dwellir:500:0.2")
    second = make_emulator(frozen_config(NOW_MS, faults=(rule,), fault_seed=3))

    emu.set_faults([rule], seed=3)
    first = status_sequence(emu)
    again = status_sequence(second)
    emu.set_faults([rule], seed=3)
    replayed = status_sequence(emu, 100)
    emu.set_faults([rule], seed=4)
    other = status_sequence(emu)

    assert set(first) == {200, 500}
    assert 0.12 <= first.count(500) / len(first) <= 0.28
    assert again == first
    assert replayed == first[:100]
    assert other != first
    assert 0.12 <= other.count(500) / len(other) <= 0.28


# -- per endpoint -----------------------------------------------------------------------


def test_a_dwellir_rule_leaves_other_endpoints_alone(emu: Emulator,
                                                     client: httpx.Client) -> None:
    inject(emu, "dwellir", "500")

    assert get_candle(client, emu).status_code == 500
    assert post_info(client, emu).status_code == 200
    assert post_hydromancer(client, emu).status_code == 200


def test_an_info_rule_leaves_dwellir_alone(emu: Emulator,
                                           client: httpx.Client) -> None:
    inject(emu, "info", "503")

    assert post_info(client, emu).status_code == 503
    assert get_candle(client, emu).status_code == 200


def test_a_star_rule_affects_every_endpoint(emu: Emulator,
                                            client: httpx.Client) -> None:
    inject(emu, "*", "503")

    assert get_candle(client, emu).status_code == 503
    assert post_info(client, emu).status_code == 503
    assert post_hydromancer(client, emu).status_code == 503
    assert emu.stats()["fault_503"] == 3


def test_websocket_rules_never_fire_on_http_requests() -> None:
    from hyperlake.emulator.config import FaultRule
    from hyperlake.emulator.faults import FaultPlan

    plan = FaultPlan((FaultRule("*", "ws_disconnect", 1.0), FaultRule("*", "ws_stall", 1.0)), 0)
    assert all(plan.pick(endpoint) is None for endpoint in ("info", "dwellir", "hydromancer"))
    assert plan.pick_ws("ws_stall") is not None
