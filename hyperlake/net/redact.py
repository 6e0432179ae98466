"""Secrets never reach a log, an error message or a file.

API keys travel inside URLs (``/dwellir/<key>/v1/...``) and headers, and HTTP
libraries happily put URLs into exception messages and keep the request on the
exception object. Everything that leaves a run as text goes through a ``Redactor``
holding that run's secrets; exceptions are rebuilt from their redacted message alone,
so neither the original request nor the original cause travels with them.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable

from hyperlake.errors import HyperlakeError

MASK = "***"
_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def _encoded_forms(secret: str) -> set[str]:
    """The secret as it may appear in text: raw, URL-encoded (either hex case)."""
    forms = {secret, urllib.parse.quote(secret), urllib.parse.quote(secret, safe=""),
             urllib.parse.quote_plus(secret)}
    forms |= {_PERCENT_ESCAPE.sub(lambda m: m.group().lower(), form) for form in forms}
    return forms


def _secrets_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One alternation of every form, longest first so no fragment of one survives."""
    forms = {form for secret in secrets if secret for form in _encoded_forms(secret)}
    if not forms:
        return None
    ordered = sorted(forms, key=len, reverse=True)
    return re.compile("|".join(re.escape(form) for form in ordered))


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each non-empty secret, raw or URL-encoded, replaced by ``***``."""
    pattern = _secrets_pattern(secrets)
    return text if pattern is None else pattern.sub(MASK, text)


class Redactor:
    """The secrets of one run, and the one place text and errors are scrubbed."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = {secret for secret in secrets if secret}
        self._pattern = _secrets_pattern(self._secrets)

    def add(self, secret: str) -> None:
        """Also hide ``secret`` from now on (empty strings are ignored)."""
        if secret and secret not in self._secrets:
            self._secrets.add(secret)
            self._pattern = _secrets_pattern(self._secrets)

    def __call__(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(MASK, text)

    def scrub_exception(self, exc: BaseException) -> BaseException:
        """A copy of ``exc`` that cannot leak a secret.

        Same type when it can be rebuilt from one message argument (plain scalar
        attributes such as ``reason`` or ``retry_after`` are copied, strings
        redacted), else a ``HyperlakeError``. The original is not attached: no
        ``__cause__``, context suppressed. Raise the result ``from None``.
        """
        message = self(str(exc))
        scrubbed = self._rebuild_same_type(exc, message)
        if scrubbed is None:
            scrubbed = HyperlakeError(f"{type(exc).__name__}: {message}")
        self._copy_redacted_notes(exc, scrubbed)
        scrubbed.__cause__ = None
        scrubbed.__suppress_context__ = True
        return scrubbed

    def _rebuild_same_type(self, exc: BaseException, message: str) -> BaseException | None:
        try:
            rebuilt = self._rebuild_os_error(exc) or type(exc)(message)
        except (TypeError, ValueError):
            return None
        self._copy_plain_attributes(exc, rebuilt)
        text = str(rebuilt)
        return rebuilt if self(text) == text else None

    def _rebuild_os_error(self, exc: BaseException) -> BaseException | None:
        """An ``OSError`` keeps its errno, redacted strerror and file name: what the
        CLI needs to say "No space left on device (file); free some space ..."."""
        if not isinstance(exc, OSError) or exc.errno is None:
            return None
        where = () if exc.filename is None else (self(str(exc.filename)),)
        return type(exc)(exc.errno, self(exc.strerror or str(exc)), *where)

    def _copy_plain_attributes(self, source: BaseException, target: BaseException) -> None:
        """Copy instance attributes that are scalars; strings are redacted."""
        for key, value in vars(source).items():
            if isinstance(value, str):
                value = self(value)
            elif not (value is None or isinstance(value, int | float)):
                continue  # objects (requests, responses, sockets) may hold secrets
            try:
                setattr(target, key, value)
            except (AttributeError, TypeError):
                continue

    def _copy_redacted_notes(self, source: BaseException, target: BaseException) -> None:
        for note in getattr(source, "__notes__", ()):
            if isinstance(note, str):
                target.add_note(self(note))
