"""Redaction of secrets from text and from exceptions, including a real httpx error."""

from __future__ import annotations

import traceback

import httpx
import pytest

from hyperlake.errors import HyperlakeError, UserError
from hyperlake.net.redact import Redactor, redact
from hyperlake.net.retry import TransientError

SECRET = "SECRETKEY"


def test_redact_replaces_raw_and_url_encoded_forms() -> None:
    secret = "a b/c+d"
    text = (f"raw {secret} quoted a%20b/c%2Bd fully a%20b%2Fc%2Bd plus a+b%2Fc%2Bd "
            "lower a%20b%2fc%2bd")
    assert redact(text, [secret]) == "raw *** quoted *** fully *** plus *** lower ***"


def test_redact_ignores_empty_secrets_and_no_secrets() -> None:
    assert redact("nothing to hide", ["", ""]) == "nothing to hide"
    assert redact("nothing to hide", []) == "nothing to hide"


def test_overlapping_secrets_leave_no_fragment() -> None:
    assert redact("key=abcdef", ["abc", "abcdef"]) == "key=***"


def test_redactor_is_callable_and_can_learn_secrets() -> None:
    redactor = Redactor([SECRET])
    assert redactor(f"/dwellir/{SECRET}/v1") == "/dwellir/***/v1"
    redactor.add("hm-key")
    redactor.add("")
    assert redactor("Bearer hm-key") == "Bearer ***"


def test_scrub_keeps_the_type_when_it_can() -> None:
    original = ValueError(f"bad key {SECRET}")
    original.__cause__ = KeyError(SECRET)
    scrubbed = Redactor([SECRET]).scrub_exception(original)
    assert type(scrubbed) is ValueError
    assert str(scrubbed) == "bad key ***"
    assert scrubbed.__cause__ is None
    assert scrubbed.__suppress_context__


def test_scrub_keeps_transient_error_fields() -> None:
    original = TransientError(f"timeout on {SECRET}", what="candles", retry_after=3.0)
    scrubbed = Redactor([SECRET]).scrub_exception(original)
    assert isinstance(scrubbed, TransientError)
    assert scrubbed.reason == "timeout on ***"
    assert scrubbed.retry_after == 3.0
    assert str(scrubbed) == "candles: timeout on ***"


def test_scrub_keeps_user_error_exit_code_and_redacts_notes() -> None:
    original = UserError(f"key {SECRET} rejected")
    original.add_note(f"while fetching /{SECRET}/x")
    scrubbed = Redactor([SECRET]).scrub_exception(original)
    assert isinstance(scrubbed, UserError)
    assert scrubbed.exit_code == 2
    assert getattr(scrubbed, "__notes__", None) == ["while fetching /***/x"]


class NeedsTwoArgs(Exception):
    def __init__(self, message: str, url: str) -> None:
        super().__init__(message, url)
        self.url = url

    def __str__(self) -> str:
        return f"{self.args[0]} at {self.url}"


def test_scrub_falls_back_to_hyperlake_error() -> None:
    original = NeedsTwoArgs("refused", f"http://x/{SECRET}/v1")
    scrubbed = Redactor([SECRET]).scrub_exception(original)
    assert type(scrubbed) is HyperlakeError
    assert str(scrubbed) == "NeedsTwoArgs: refused at http://x/***/v1"


def _connect_error() -> httpx.ConnectError:
    with httpx.Client(trust_env=False, timeout=5) as client:
        try:
            client.get(f"http://127.0.0.1:9/{SECRET}/v1/candles")
        except httpx.ConnectError as err:
            return err
    pytest.fail("port 9 on loopback unexpectedly answered")


def test_scrub_real_httpx_connect_error() -> None:
    err = _connect_error()
    assert SECRET in str(err.request.url)  # the original carries the secret
    scrubbed = Redactor([SECRET]).scrub_exception(err)
    assert isinstance(scrubbed, httpx.ConnectError)
    assert SECRET not in str(scrubbed)
    assert scrubbed.__cause__ is None
    with pytest.raises(RuntimeError):
        _ = scrubbed.request  # the request (and its URL) did not come along
    try:
        try:
            raise err
        except httpx.ConnectError as caught:
            raise Redactor([SECRET]).scrub_exception(caught) from None
    except httpx.ConnectError as final:
        printed = "".join(traceback.format_exception(final))
    assert SECRET not in printed


def test_scrub_real_httpx_status_error() -> None:
    request = httpx.Request("GET", f"https://api.example/{SECRET}/v1/candles")
    response = httpx.Response(500, request=request)
    with pytest.raises(httpx.HTTPStatusError) as caught:
        response.raise_for_status()
    assert SECRET in str(caught.value)  # httpx puts the URL in the message
    scrubbed = Redactor([SECRET]).scrub_exception(caught.value)
    assert type(scrubbed) is HyperlakeError  # needs request= and response=
    assert SECRET not in str(scrubbed)
    assert "***" in str(scrubbed)
