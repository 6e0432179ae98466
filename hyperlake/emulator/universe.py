"""The emulator's tradable universe, shaped like the real recorded responses.

Perpetuals come from a real ``metaAndAssetCtxs`` capture (names such as ``kPEPE``,
delisted coins flagged ``isDelisted``, margin tables), spot pairs from a real
``spotMeta`` capture (``PURR/USDC`` and ``@N`` names), and one HIP-3 dex, ``xyz``,
adds builder-deployed perps named ``xyz:COIN``. Everything an instrument needs to
trade in the market model (tick size, lot size, price level, liquidity, listing
and delisting times) is derived here, deterministically, from those files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from hyperlake.schemas.exchange import HISTORY_FROM_MS

PERP_MAX_DECIMALS = 6
SPOT_MAX_DECIMALS = 8
SIG_FIGS = 5


def _ms(year: int, month: int, day: int) -> int:
    return int(dt.datetime(year, month, day, tzinfo=dt.UTC).timestamp()) * 1000


FIRST_LISTING_MS = HISTORY_FROM_MS
LAST_LISTING_MS = _ms(2025, 6, 1)
LAST_DELISTING_MS = _ms(2025, 10, 1)
HIP3_DEX = "xyz"
#: HIP-3 perps of the ``xyz`` dex: (coin, szDecimals, maxLeverage, price level).
HIP3_ASSETS: tuple[tuple[str, int, int, float], ...] = (
    ("XYZ100", 4, 20, 25_000.0),
    ("TSLA", 3, 10, 410.0),
    ("GOLD", 4, 20, 3_950.0),
)


@dataclass(frozen=True)
class Instrument:
    name: str
    kind: str  # "perp" | "spot" | "hip3"
    ordinal: int  # position in the universe; makes trade ids unique across coins
    sz_decimals: int
    px_decimals: int
    base_px: float
    listed_ms: int
    delisted_ms: int | None
    liquidity: float  # mean trades per second

    @property
    def has_funding(self) -> bool:
        return self.kind != "spot"


def _stable_fraction(text: str) -> float:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def price_decimals(price: float, sz_decimals: int, max_decimals: int) -> int:
    """Decimals allowed by Hyperliquid's rule: 5 significant figures, and at most
    ``max_decimals - szDecimals`` decimals."""
    integer_digits = len(str(int(price))) if price >= 1 else 0
    if price >= 1:
        sig_limited = max(0, SIG_FIGS - integer_digits)
    else:
        leading_zeros = 0
        p = price
        while p < 0.1 and leading_zeros < 12:
            p *= 10
            leading_zeros += 1
        sig_limited = leading_zeros + SIG_FIGS
    return max(0, min(sig_limited, max_decimals - sz_decimals))


def _load_json(name: str) -> Any:
    return json.loads(resources.files("hyperlake.emulator").joinpath("data", name).read_text())


@dataclass(frozen=True)
class Universe:
    instruments: dict[str, Instrument]
    perp_meta: dict[str, Any]  # the ``meta`` body of the main dex, verbatim shape
    hip3_meta: dict[str, Any]
    spot_meta: dict[str, Any]

    def get(self, name: str) -> Instrument | None:
        return self.instruments.get(name)

    def perps(self, include_delisted: bool = True) -> list[Instrument]:
        return [
            i
            for i in self.instruments.values()
            if i.kind == "perp" and (include_delisted or i.delisted_ms is None)
        ]


def _listing(name: str, ordinal: int) -> int:
    if ordinal < 30:
        return FIRST_LISTING_MS
    span = LAST_LISTING_MS - FIRST_LISTING_MS
    day = 86_400_000
    return FIRST_LISTING_MS + int(_stable_fraction("list/" + name) * span) // day * day


def _delisting(name: str, listed_ms: int) -> int:
    day = 86_400_000
    start = listed_ms + 60 * day
    span = max(day, LAST_DELISTING_MS - start)
    return start + int(_stable_fraction("delist/" + name) * span) // day * day


#: Mean trades per second of the busiest coins; the rest thin out with their rank.
MAJOR_LIQUIDITY = {"BTC": 0.8, "ETH": 0.6, "SOL": 0.4, "HYPE": 0.4}


def _liquidity(name: str, ordinal: int) -> float:
    return MAJOR_LIQUIDITY.get(name, max(0.005, 0.3 * 0.95**ordinal))


def _perps(meta: dict[str, Any], ctxs: list[dict[str, Any]]) -> list[Instrument]:
    out = []
    for ordinal, (asset, ctx) in enumerate(zip(meta["universe"], ctxs, strict=True)):
        name = asset["name"]
        price = float(ctx.get("markPx") or ctx.get("oraclePx") or 1.0)
        listed = _listing(name, ordinal)
        out.append(
            Instrument(
                name=name,
                kind="perp",
                ordinal=ordinal,
                sz_decimals=asset["szDecimals"],
                px_decimals=price_decimals(price, asset["szDecimals"], PERP_MAX_DECIMALS),
                base_px=price,
                listed_ms=listed,
                delisted_ms=_delisting(name, listed) if asset.get("isDelisted") else None,
                liquidity=_liquidity(name, ordinal),
            )
        )
    return out


def _hip3(first_ordinal: int) -> tuple[list[Instrument], dict[str, Any]]:
    out = []
    universe = []
    for k, (coin, sz_dec, lev, price) in enumerate(HIP3_ASSETS):
        name = f"{HIP3_DEX}:{coin}"
        out.append(
            Instrument(
                name=name,
                kind="hip3",
                ordinal=first_ordinal + k,
                sz_decimals=sz_dec,
                px_decimals=price_decimals(price, sz_dec, PERP_MAX_DECIMALS),
                base_px=price,
                listed_ms=_ms(2025, 10, 13),
                delisted_ms=None,
                liquidity=0.3,
            )
        )
        universe.append(
            {"szDecimals": sz_dec, "name": name, "maxLeverage": lev, "marginTableId": lev}
        )
    meta = {
        "universe": universe,
        "marginTables": [
            [lev, {"description": "", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": lev}]}]
            for lev in sorted({a[2] for a in HIP3_ASSETS})
        ],
        "collateralToken": 0,
    }
    return out, meta


def _spots(
    spot_meta: dict[str, Any], perp_prices: dict[str, float], first_ordinal: int
) -> list[Instrument]:
    tokens = {t["index"]: t for t in spot_meta["tokens"]}
    out = []
    for k, pair in enumerate(spot_meta["universe"]):
        base = tokens[pair["tokens"][0]]
        name = pair["name"]
        price = perp_prices.get(base["name"]) or round(0.01 + 20 * _stable_fraction(name), 4)
        out.append(
            Instrument(
                name=name,
                kind="spot",
                ordinal=first_ordinal + k,
                sz_decimals=base["szDecimals"],
                px_decimals=price_decimals(price, base["szDecimals"], SPOT_MAX_DECIMALS),
                base_px=price,
                listed_ms=_listing(name, 99),
                delisted_ms=None,
                liquidity=0.2 if name in ("PURR/USDC", "@107") else 0.02,
            )
        )
    return out


@cache
def load_universe() -> Universe:
    meta, ctxs = _load_json("metaAndAssetCtxs_2026-02.json")
    spot_meta = _load_json("spotMeta_2025-08.json")
    perps = _perps(meta, ctxs)
    hip3, hip3_meta = _hip3(len(perps))
    prices = {i.name: i.base_px for i in perps}
    spots = _spots(spot_meta, prices, len(perps) + len(hip3))
    instruments = {i.name: i for i in (*perps, *hip3, *spots)}
    return Universe(instruments, meta, hip3_meta, spot_meta)
