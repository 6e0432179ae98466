"""Asset contexts: one snapshot of every configured dex's (and spot's) state per run.

``metaAndAssetCtxs`` answers ``[meta, ctxs]`` with ``ctxs[i]`` belonging to
``meta.universe[i]`` (one call per dex: ``{"dex": "xyz"}`` for HIP-3), and
``spotMetaAndAssetCtxs`` the spot equivalent, each context naming its pair (``coin``).
The exchange keeps no history of them, so each run appends what it saw: one row per
market, stamped with our clock when the answer arrived, committed as a checkpoint
part of the market's ``asset_ctxs`` series (compaction files it under
``asset_ctxs/market=…/date=…``). The same answer ranks markets for ``top`` N by day
notional volume.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from hyperlake.lake.checkpoints import Series, ShardWriter
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import Span
from hyperlake.net.info import InfoClient, malformed
from hyperlake.schemas.asset_ctxs import AssetCtxRow, asset_ctx_table, parse_asset_ctx
from hyperlake.schemas.records import InvalidRecord
from hyperlake.schemas.vocabulary import Source

SOURCE: Source = "hyperliquid"
SPOT = "spot"


@dataclass
class Snapshot:
    """Every context one run saw, by market; what it cost."""

    rows: dict[str, AssetCtxRow] = field(default_factory=dict)
    requests: int = 0
    weight: float = 0.0

    def day_volume(self, market: str) -> float:
        row = self.rows.get(market)
        return (row.day_ntl_vlm or 0.0) if row is not None else 0.0


def _pairs(answer: Any, what: str) -> list[tuple[str, Any]]:
    """(market name, context) of a ``[meta, ctxs]`` answer."""
    if not isinstance(answer, list) or len(answer) != 2:
        raise malformed(f"{what} is not [meta, contexts]")
    meta, ctxs = answer
    universe = meta.get("universe") if isinstance(meta, dict) else None
    if not isinstance(universe, list) or not isinstance(ctxs, list) \
            or len(universe) != len(ctxs):
        raise malformed(f"{what}: universe and contexts do not pair up")
    out = []
    for asset, ctx in zip(universe, ctxs, strict=True):
        name = ctx.get("coin") if isinstance(ctx, dict) else None
        if not isinstance(name, str):
            name = asset.get("name") if isinstance(asset, dict) else None
        if not isinstance(name, str):
            raise malformed(f"{what}: a market without a name")
        out.append((name, ctx))
    return out


def fetch_snapshot(client: InfoClient, dexes: Iterable[str], spot: bool,
                   now_ms: Any) -> Snapshot:
    """Ask each dex (``""`` is the main one) and, with ``spot``, the spot contexts;
    ``now_ms()`` stamps each answer. Raises ``TransientError`` when a request keeps
    failing (``InfoClient``)."""
    snapshot = Snapshot()
    asks: list[tuple[dict[str, Any], str]] = [
        ({"type": "metaAndAssetCtxs", **({"dex": d} if d else {})}, d) for d in dexes]
    if spot:
        asks.append(({"type": "spotMetaAndAssetCtxs"}, SPOT))
    for body, dex in asks:
        what = f"asset contexts ({dex or 'main dex'})"
        before = (client.stats.requests, client.stats.weight)
        pairs = client.call(body, what=what, decode=partial(_pairs, what=what))
        at = int(now_ms())
        for name, ctx in pairs:
            try:
                snapshot.rows[name] = parse_asset_ctx(ctx, dex, at, at)
            except InvalidRecord as exc:
                raise malformed(f"{what} {name}: {exc}") from None
        snapshot.requests += client.stats.requests - before[0]
        snapshot.weight += client.stats.weight - before[1]
    return snapshot


def write_snapshot(paths: LakePaths, snapshot: Snapshot, markets: Iterable[str]) -> int:
    """Commit the contexts of ``markets`` (those the snapshot holds), one part each,
    spanning the millisecond of its time. Returns how many were written."""
    written = 0
    for market in markets:
        row = snapshot.rows.get(market)
        if row is None:
            continue
        series = Series(paths, SeriesKey("asset_ctxs", SOURCE, market, ""))
        span = Span(row.time, row.time + 1)
        writer = ShardWriter(series, series.job_folder(span) / "snapshot")
        writer.commit(span, asset_ctx_table(market, SOURCE, [row]), [])
        written += 1
    return written
