"""Finding the Dwellir key and endpoint through the vendor's own CLI.

When no key is in the environment and a ``dwellir`` executable is on PATH, ask it, as
the vendor's guide does: ``dwellir keys list --toon`` for the enabled keys (one must
be chosen by name when several are), then ``dwellir endpoints search hyperliquid
--ecosystem hyperliquid --network mainnet --key NAME --toon`` for the Hyperliquid
index endpoint, whose URL carries the key as its last path segment. Both answers are
TOON (``toon-format`` decodes them). The key stays in memory: every message is
scrubbed of it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from hyperlake.errors import UserError
from hyperlake.net.redact import Redactor

TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Discovered:
    key: str
    base_url: str  # the index endpoint without the key
    key_name: str


def _run(argv: list[str], redact: Redactor) -> Any:
    import toon_format

    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"{' '.join(argv[:3])}: {redact(str(exc))}") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        detail = redact(lines[-1]) if lines else f"exit status {done.returncode}"
        raise UserError(f"{' '.join(argv[:3])} failed: {detail}; check `dwellir auth "
                        "status` (or set HYPERLAKE_DWELLIR_KEY)")
    try:
        return toon_format.loads(done.stdout)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is one line
        raise UserError(f"{' '.join(argv[:3])}: an answer that is not TOON "
                        f"({redact(str(exc))[:80]})") from None


def _data(answer: Any) -> Any:
    """The payload of the CLI's ``{ok, data, meta}`` envelope (or the answer itself)."""
    if isinstance(answer, dict) and answer.get("ok") is False:
        error = answer.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        raise UserError(f"dwellir CLI: {message or 'it reported an error'}")
    return answer.get("data", answer) if isinstance(answer, dict) else answer


def _nodes(node: Any) -> list[dict[str, Any]]:
    """Every endpoint (an object with an ``https`` URL) anywhere in an answer, in order."""
    if isinstance(node, dict):
        found = [node] if isinstance(node.get("https"), str) and node["https"] else []
        return found + [n for v in node.values() for n in _nodes(v)]
    if isinstance(node, list):
        return [n for item in node for n in _nodes(item)]
    return []


def _is_index(node: dict[str, Any]) -> bool:
    """The HyperCore index (by its node type, or its host name)."""
    kind = node.get("node_type")
    name = kind.get("name") if isinstance(kind, dict) else kind
    return "index" in str(name or "").lower() or "index" in str(node["https"]).lower()


def choose_key(keys: Any, name: str | None) -> dict[str, Any]:
    if not isinstance(keys, list):
        raise UserError("dwellir keys list: no list of keys in its answer")
    usable = [k for k in keys if isinstance(k, dict) and isinstance(k.get("api_key"), str)
              and isinstance(k.get("name"), str)]
    enabled = [k for k in usable if k.get("enabled") is True]
    if name is not None:
        named = [k for k in usable if k["name"] == name]
        if not named:
            raise UserError(f"--dwellir-key-name {name!r}: no such key; dwellir lists "
                            f"{', '.join(k['name'] for k in usable) or 'none'}")
        if named[0].get("enabled") is not True:
            raise UserError(f"--dwellir-key-name {name!r}: that key is disabled; enable it "
                            "(dwellir keys enable) or choose another")
        return named[0]
    if not enabled:
        raise UserError("dwellir keys list: no enabled key; create or enable one "
                        "(dwellir keys create), or set HYPERLAKE_DWELLIR_KEY")
    if len(enabled) > 1:
        names = ", ".join(k["name"] for k in enabled)
        raise UserError(f"several Dwellir keys are enabled ({names}): say which with "
                        "--dwellir-key-name NAME (or sources.dwellir.key_name)")
    return enabled[0]


def discover(name: str | None, executable: str = "dwellir") -> Discovered | None:
    """The key and index endpoint from the ``dwellir`` CLI; None when it is not on PATH."""
    path = shutil.which(executable)
    if path is None:
        return None
    redact = Redactor()
    chosen = choose_key(_data(_run([path, "keys", "list", "--toon"], redact)), name)
    key, key_name = chosen["api_key"], chosen["name"]
    redact.add(key)
    answer = _data(_run([path, "endpoints", "search", "hyperliquid", "--ecosystem",
                         "hyperliquid", "--network", "mainnet", "--key", key_name, "--toon"],
                        redact))
    nodes = _nodes(answer)
    index = [str(n["https"]) for n in nodes if _is_index(n)]
    if not index:
        raise UserError("dwellir endpoints search: no Hyperliquid index endpoint for key "
                        f"{key_name!r} (found {len(nodes)} other endpoints)")
    url = index[0].rstrip("/")
    base = url[: -len(key) - 1] if url.endswith(f"/{key}") else url
    return Discovered(key, base, key_name)
