"""Healthchecks-style pings around an update run: ``URL/start`` when it begins, ``URL``
when it succeeds, ``URL/fail`` when it fails or leaves gaps, with the run's one-line
JSON summary as the body. A ping that cannot be delivered never changes the run's
outcome: it becomes one warning line (the URL's path, which holds the check's secret
id, is not shown)."""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

TIMEOUT_S = 10.0
ATTEMPTS = 2


class Pinger:
    def __init__(self, url: str | None, verify: ssl.SSLContext | bool = True) -> None:
        self.url = url.rstrip("/") if url else None
        self.verify = verify
        self.warnings: list[str] = []

    def start(self) -> None:
        self._send("/start", "")

    def success(self, body: str) -> None:
        self._send("", body)

    def fail(self, body: str) -> None:
        self._send("/fail", body)

    def _send(self, suffix: str, body: str) -> None:
        if self.url is None:
            return
        import httpx

        problem = ""
        for _ in range(ATTEMPTS):
            try:
                with httpx.Client(timeout=TIMEOUT_S, verify=self.verify) as http:
                    answer = http.post(self.url + suffix, content=body.encode())
                if answer.status_code < 400:
                    return
                problem = f"http {answer.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
        self.warnings.append(f"ping {shown(self.url)}{suffix or ' (success)'} failed: {problem}")


def shown(url: str) -> str:
    """The URL without its path (a check's id is its secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.path.strip("/") else url
