"""Start and stop the emulator: free ports, TLS material, base URLs, control calls.

    with Emulator(EmulatorConfig(seed=7, clock=ClockConfig(start_ms))) as emu:
        emu.urls.hyperliquid   # http://127.0.0.1:PORT          (POST /info)
        emu.urls.dwellir       # http://127.0.0.1:PORT/dwellir  (GET /{KEY}/v1/candles)

Each server is a granian process. granian binds with SO_REUSEPORT, so two servers on
one port would silently share connections: every port is reserved by a socket of
ours bound with SO_REUSEPORT (never listening) for the emulator's whole life, which
keeps the kernel from handing that port to anyone else.

With any fault rule in the configuration (or ``gateway=True``), the cleartext
``hyperliquid``, ``hydromancer``, ``dwellir`` and ``ws`` URLs point at the fault gateway
(``hyperlake.emulator.gateway``) instead of the server: it injects the ``reset`` and
``goaway`` faults and turns the app's reset markers (``timeout``, ``truncated``,
``stream_reset``, and ``ws_drop`` on the websocket) into real stream or TCP resets.
Endpoints whose ``reset``/``goaway`` rates differ get a gateway each, so that a rule for
one endpoint leaves the others alone. ``control`` and the TLS port always reach the
server directly (stream faults there arrive as a body cut short of its Content-Length,
not as a reset). Without faults there is no gateway, so benchmarks measure the server
alone.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from hyperlake.emulator.app import CONFIG_ENV
from hyperlake.emulator.config import NEEDS_GATEWAY, ClockConfig, EmulatorConfig, FaultRule

STARTUP_TIMEOUT_S = 30.0
#: The endpoints with a base URL of their own, which the gateway can tell apart.
GATEWAYED_ENDPOINTS = ("info", "hydromancer", "dwellir", "ws")


class EmulatorError(RuntimeError):
    """The emulator could not start or answer."""


@dataclass(frozen=True)
class EmulatorUrls:
    hyperliquid: str  # POST {hyperliquid}/info
    hydromancer: str  # POST {hydromancer}/info
    dwellir: str  # GET {dwellir}/{KEY}/v1/candles
    ws: str
    control: str  # the server itself, bypassing the fault gateway
    tls_hyperliquid: str | None = None
    tls_dwellir: str | None = None
    ca_pem: str | None = None  # path of the CA that signed the TLS certificate


def reserve_port(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound with SO_REUSEPORT to a kernel-chosen free port, not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    return sock


@contextlib.contextmanager
def granian_app(app_dir: Path, target: str, *, host: str = "127.0.0.1",
                cpu: int | None = None, timeout_s: float = 20.0) -> Iterator[int]:
    """Serve a bare RSGI app (``module:attr`` in ``app_dir``) with granian on a reserved
    port until the block ends; yields the port. For tests and benchmarks that need a
    real server other than the emulator (a gateway's upstream, granian's ceiling)."""
    reservation = reserve_port(host)
    port: int = reservation.getsockname()[1]
    argv = [sys.executable, "-m", "granian", "--interface", "rsgi", "--host", host, "--port",
            str(port), "--no-log", "--working-dir", str(app_dir), target]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    child = _Child(argv, dict(os.environ), port, reservation)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if child.process.poll() is not None:
                raise EmulatorError(f"granian exited with {child.process.returncode}")
            try:
                socket.create_connection((host, port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise EmulatorError(f"granian did not listen on {port} in time") from None
                time.sleep(0.05)
        yield port
    finally:
        child.stop()


def _write_tls_material(folder: Path) -> tuple[Path, Path, Path]:
    import trustme
    from cryptography.hazmat.primitives import serialization

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    cert_path, key_path, ca_path = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key_path.write_bytes(pkcs8)
    ca_path.write_bytes(ca.cert_pem.bytes())
    return cert_path, key_path, ca_path


def gateway_rates(rules: tuple[FaultRule, ...], endpoint: str) -> tuple[float, float]:
    """The (reset, goaway) rates of the gateway in front of ``endpoint``'s base URL."""
    def rate(kind: str) -> float:
        total = sum(r.rate for r in rules if r.kind == kind and r.endpoint in (endpoint, "*"))
        return min(1.0, total)

    return rate("reset"), rate("goaway")


def _get_json(port: int, path: str, host: str = "127.0.0.1", timeout: float = 5.0) -> Any:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return orjson.loads(response.read())
    finally:
        conn.close()


def _post_json(port: int, path: str, payload: Any, host: str = "127.0.0.1") -> Any:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("POST", path, orjson.dumps(payload), {"content-type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise EmulatorError(f"control {path} answered {response.status}: {body[:200]!r}")
        return orjson.loads(body)
    finally:
        conn.close()


class _Child:
    """One server subprocess and the port it serves."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int,
                 reservation: socket.socket | None) -> None:
        self.port = port
        self.reservation = reservation
        self.process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                        start_new_session=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self.reservation is not None:
            self.reservation.close()
            self.reservation = None


class Emulator:
    """The emulator as a library: ``start()`` / ``stop()`` or a context manager."""

    def __init__(self, config: EmulatorConfig | None = None, *, tls: bool = False,
                 host: str = "127.0.0.1", port: int | None = None, tls_port: int | None = None,
                 cpu: int | None = None, gateway: bool | None = None) -> None:
        """``gateway``: put the fault gateway in front of the cleartext HTTP URLs; None
        (the default) does so when the configuration has fault rules. Pass True to
        inject stream faults later with ``set_faults`` on an emulator started without."""
        self.config = config or EmulatorConfig()
        self.config.validate()
        self.gateway = bool(self.config.faults) if gateway is None else gateway
        if not self.gateway and any(r.kind in NEEDS_GATEWAY for r in self.config.faults):
            raise EmulatorError("the reset, goaway and ws_drop faults need the gateway "
                                "(gateway=False)")
        self.tls = tls
        self.host = host
        self._ports = (port, tls_port)
        self.cpu = cpu
        self._children: list[_Child] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._urls: EmulatorUrls | None = None

    @property
    def urls(self) -> EmulatorUrls:
        if self._urls is None:
            raise EmulatorError("the emulator is not running: call start() first")
        return self._urls

    @property
    def port(self) -> int:
        return self._children[0].port

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Emulator:
        self._tmp = tempfile.TemporaryDirectory(prefix="hyperlake-emulator-")
        try:
            self._start_servers(Path(self._tmp.name))
        except BaseException:
            self.stop()
            raise
        return self

    def _start_servers(self, folder: Path) -> None:
        env = {**os.environ, CONFIG_ENV: self.config.to_json().decode()}
        main_port, tls_port = self._ports
        plain = self._spawn_server(env, main_port, [])
        tls_args: list[str] = []
        ca_path = None
        if self.tls:
            cert, key, ca = _write_tls_material(folder)
            ca_path = str(ca)
            tls_args = ["--cert", str(cert), "--key", str(key)]
            self._spawn_server(env, tls_port, tls_args)
        for child in self._children:
            self._wait_ready(child)
        ports = dict.fromkeys(GATEWAYED_ENDPOINTS, plain.port)
        if self.gateway:
            ports = self._spawn_gateways(folder, plain.port)
        base = {endpoint: f"http://{self.host}:{port}" for endpoint, port in ports.items()}
        tls_base = f"https://localhost:{self._children[1].port}" if self.tls else None
        self._urls = EmulatorUrls(
            hyperliquid=base["info"],
            hydromancer=f"{base['hydromancer']}/hydromancer",
            dwellir=f"{base['dwellir']}/dwellir",
            ws=f"ws://{self.host}:{ports['ws']}/ws",
            control=f"http://{self.host}:{plain.port}",
            tls_hyperliquid=tls_base,
            tls_dwellir=f"{tls_base}/dwellir" if tls_base else None,
            ca_pem=ca_path,
        )

    def _spawn_server(self, env: dict[str, str], port: int | None, extra: list[str]) -> _Child:
        reservation = None
        if port is None:
            reservation = reserve_port(self.host)
            port = reservation.getsockname()[1]
        argv = [sys.executable, "-m", "hyperlake.emulator.serve", "--host", self.host,
                "--port", str(port), *extra]
        if self.cpu is not None:
            argv += ["--cpu", str(self.cpu)]
        child = _Child(argv, env, port, reservation)
        self._children.append(child)
        return child

    def _spawn_gateways(self, folder: Path, upstream: int) -> dict[str, int]:
        """One gateway per distinct (reset, goaway) rates; the port of each endpoint."""
        endpoints_by_rates: dict[tuple[float, float], list[str]] = {}
        for endpoint in GATEWAYED_ENDPOINTS:
            rates = gateway_rates(self.config.faults, endpoint)
            endpoints_by_rates.setdefault(rates, []).append(endpoint)
        launched = [(self._launch_gateway(folder / f"gateway-{index}.port", upstream, rates),
                     endpoints)
                    for index, (rates, endpoints) in enumerate(endpoints_by_rates.items())]
        ports: dict[str, int] = {}
        for (child, port_file), endpoints in launched:
            ports.update(dict.fromkeys(endpoints, self._wait_gateway(child, port_file)))
        return ports

    def _launch_gateway(self, port_file: Path, upstream: int,
                        rates: tuple[float, float]) -> tuple[_Child, Path]:
        reset_rate, goaway_rate = rates
        argv = [sys.executable, "-m", "hyperlake.emulator.gateway",
                "--upstream", f"{self.host}:{upstream}", "--seed", str(self.config.fault_seed),
                "--reset-rate", str(reset_rate), "--goaway-rate", str(goaway_rate),
                "--port-file", str(port_file)]
        child = _Child(argv, dict(os.environ), 0, None)
        self._children.append(child)
        return child, port_file

    @staticmethod
    def _wait_gateway(child: _Child, port_file: Path) -> int:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not port_file.exists():
            if child.process.poll() is not None or time.monotonic() > deadline:
                raise EmulatorError("the fault gateway did not start")
            time.sleep(0.02)
        child.port = int(port_file.read_text().strip())
        return child.port

    def _wait_ready(self, child: _Child) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise EmulatorError(f"emulator server exited with {child.process.returncode}")
            if "--cert" not in child.process.args:  # type: ignore[operator]
                with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                    _get_json(child.port, "/_emulator/health", self.host, timeout=1)
                    return
            else:
                with contextlib.suppress(OSError), socket.create_connection(
                    (self.host, child.port), timeout=1
                ):
                    return
            time.sleep(0.05)
        raise EmulatorError(f"emulator server on port {child.port} did not answer in time")

    def stop(self) -> None:
        for child in reversed(self._children):
            child.stop()
        self._children.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self._urls = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- control ------------------------------------------------------------------------

    def _server_ports(self) -> list[int]:
        count = 2 if self.tls else 1
        return [c.port for c in self._children[:count]]

    def stats(self) -> dict[str, int]:
        """Counters of the cleartext server (requests, statuses, faults, weight)."""
        result: dict[str, int] = _get_json(self._children[0].port, "/_emulator/stats", self.host)
        return result

    def reset_stats(self) -> None:
        for port in self._server_ports():
            _post_json(port, "/_emulator/reset-stats", {}, self.host)

    def set_clock(self, start_ms: int, rate: float = 0.0) -> None:
        """Move every server's clock to ``start_ms`` (frozen, or running at ``rate``)."""
        for port in self._server_ports():
            _post_json(port, "/_emulator/clock", {"start_ms": start_ms, "rate": rate}, self.host)

    def set_faults(self, rules: list[FaultRule] | tuple[FaultRule, ...], seed: int = 0) -> None:
        """Replace the in-server fault rules (gateway faults are fixed at start). The
        stream faults (timeout, truncated, stream_reset, ws_drop) reset streams only
        through the gateway: start the emulator with faults or ``gateway=True`` to have it;
        ``ws_drop`` is refused without it (the client would get the marker as a frame)."""
        if not self.gateway and any(r.kind == "ws_drop" for r in rules):
            raise EmulatorError("ws_drop needs the gateway: start with gateway=True")
        payload = {"faults": [r.__dict__ for r in rules], "seed": seed}
        for port in self._server_ports():
            _post_json(port, "/_emulator/faults", payload, self.host)

    def now_ms(self) -> int:
        health = _get_json(self._children[0].port, "/_emulator/health", self.host)
        return int(health["now_ms"])


def frozen_config(now_ms: int, **overrides: Any) -> EmulatorConfig:
    """A configuration with the clock frozen at ``now_ms`` (what tests want)."""
    return EmulatorConfig(clock=ClockConfig(now_ms), **overrides)
