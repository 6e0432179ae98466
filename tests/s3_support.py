"""A real S3 API on loopback for the tests: moto's server, started once a session.

``ThreadedMotoServer`` runs in the test process, offline, on a free port of 127.0.0.1;
the lake's commands (subprocesses included) reach it through ``HYPERLAKE_S3_ENDPOINT``
and test credentials in the environment. Every request is counted (``S3Server.seen``),
so a test can assert which objects a query touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from hyperlake.lake.store import ObjectPath

BUCKET = "lake"
ENDPOINT_ENV = "HYPERLAKE_S3_ENDPOINT"
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class Request:
    method: str
    key: str  # the object key ("" for a bucket request)
    query: dict[str, list[str]]

    @property
    def is_list(self) -> bool:
        return self.method == "GET" and "list-type" in self.query


@dataclass
class S3Server:
    endpoint: str
    server: Any
    seen: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self) -> Any:
        """A boto3 client (what the tests use to reach behind the lake's back)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def lake(self, name: str = "") -> ObjectPath:
        """A fresh lake root in the bucket (a prefix of its own)."""
        return ObjectPath(BUCKET, f"{name or 'lake'}-{uuid.uuid4().hex[:12]}")

    def stop(self) -> None:
        self.server.stop()
        for name in (*ENV, ENDPOINT_ENV):
            os.environ.pop(name, None)

    @contextlib.contextmanager
    def counting(self) -> Iterator[list[Request]]:
        """The requests made while the block runs."""
        with self.lock:
            start = len(self.seen)
        got: list[Request] = []
        try:
            yield got
        finally:
            with self.lock:
                got += self.seen[start:]


def _counted(app: Callable[..., Any], server: S3Server) -> Callable[..., Any]:
    def counting_app(environ: dict[str, Any], start_response: Any) -> Any:
        path = unquote(environ.get("PATH_INFO", ""))
        bucket, _, key = path.lstrip("/").partition("/")
        request = Request(environ.get("REQUEST_METHOD", ""), key,
                          parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        if bucket == BUCKET:
            with server.lock:
                server.seen.append(request)
        return app(environ, start_response)
    return counting_app


def start_s3() -> S3Server:
    """moto's S3 on a free loopback port, the bucket made, the environment set."""
    for name, value in ENV.items():
        os.environ[name] = value
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line a request else
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    server = S3Server(f"http://{host}:{port}", moto)
    wsgi = moto._server
    assert wsgi is not None
    wsgi.app = _counted(wsgi.app, server)
    os.environ[ENDPOINT_ENV] = server.endpoint
    server.client().create_bucket(Bucket=BUCKET)
    return server
