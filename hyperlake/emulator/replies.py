"""The reply value every emulator handler returns, and the canned bodies real servers send."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str | None = JSON
    headers: tuple[tuple[str, str], ...] = field(default=())
    weight: int = 0  # rate-limit weight this answer costs beyond the base

    def header_list(self) -> list[tuple[str, str]]:
        out = list(self.headers)
        if self.content_type is not None:
            out.append(("content-type", self.content_type))
        return out


def json_reply(value: Any, status: int = 200, weight: int = 0,
               headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, orjson.dumps(value), JSON, headers, weight)


# Hyperliquid's recorded error answers (tests/fixtures/error_responses_catalog.json).
UNPROCESSABLE = Reply(422, b"Failed to deserialize the JSON body into the target type", TEXT)
BAD_JSON = Reply(400, b"Failed to parse the request body as JSON", TEXT)
UNSUPPORTED_MEDIA = Reply(415, b"Expected request with `Content-Type: application/json`", TEXT)
METHOD_NOT_ALLOWED = Reply(405, b"", None)
NULL_500 = Reply(500, b"null", JSON)
NOT_FOUND = Reply(404, b"Not Found", TEXT)
