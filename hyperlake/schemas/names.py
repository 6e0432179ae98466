"""The one market-name matcher: what users type, against the names that exist.

Users write ``btc``, ``kpepe`` or ``hype/usdc``; the exchange and the lake know
``BTC``, ``kPEPE`` and ``@107``. Every command resolves a typed name the same way:
the exact spelling first, then an exact alias, then the unique case-insensitive
match. Two names that differ only in case (possible on the exchange) make a typed
name in neither case ambiguous rather than silently picking one. Who asks decides
the wording of the error; this module only says what matched, or what is close.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

MAX_SUGGESTIONS = 3


class NoMatch(LookupError):
    """No name matches; ``close`` holds the nearest spellings (maybe none)."""

    def __init__(self, text: str, close: list[str]) -> None:
        super().__init__(text)
        self.close = close


class Ambiguous(LookupError):
    """Several names match but for case; ``names`` lists them."""

    def __init__(self, text: str, names: list[str]) -> None:
        super().__init__(text)
        self.names = names


class NameIndex:
    """Names, and other exact spellings (aliases) that stand for them."""

    def __init__(self, names: Iterable[str], aliases: Mapping[str, Iterable[str]] = {}) -> None:
        self.names = list(dict.fromkeys(names))
        self._exact = set(self.names)
        self._alias: dict[str, list[str]] = {}
        self._folded: dict[str, list[str]] = {}
        self._spellings: dict[str, list[str]] = {}  # folded spelling -> spellings shown
        for name in self.names:
            for spelling in (name, *aliases.get(name, ())):
                if spelling != name:
                    _add(self._alias, spelling, name)
                _add(self._folded, spelling.casefold(), name)
                _add(self._spellings, spelling.casefold(), spelling)

    def match(self, text: str) -> str:
        """The name ``text`` means. Raises NoMatch or Ambiguous."""
        if text in self._exact:
            return text
        for found in (self._alias.get(text), self._folded.get(text.casefold())):
            if found and len(found) == 1:
                return found[0]
            if found:
                raise Ambiguous(text, list(found))
        raise NoMatch(text, self.close_to(text))

    def close_to(self, text: str) -> list[str]:
        """Up to three spellings that look like ``text``."""
        close = difflib.get_close_matches(text.casefold(), list(self._spellings),
                                          n=MAX_SUGGESTIONS)
        shown = dict.fromkeys(s for folded in close for s in self._spellings[folded])
        return list(shown)[:MAX_SUGGESTIONS]


def _add(table: dict[str, list[str]], key: str, value: str) -> None:
    found = table.setdefault(key, [])
    if value not in found:
        found.append(value)
