"""``hyperlake update --print-config``: the effective configuration, keys masked."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hyperlake.lake.store import Location
    from hyperlake.pipelines.settings import SourceSettings
    from hyperlake.pipelines.update.config import UpdateConfig


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(config: UpdateConfig, settings: SourceSettings, lake: Location) -> str:
    """TOML of what the run would use: the file, the environment and the flags merged;
    a key is shown only as set or not set."""
    from hyperlake.pipelines.candles.registry import REGISTRY
    from hyperlake.pipelines.update.ping import shown

    urls = {"hyperliquid": settings.hyperliquid_url, "hydromancer": settings.hydromancer_url,
            "dwellir": settings.dwellir_url}
    weights = {"hyperliquid": settings.hyperliquid_weight,
               "hydromancer": settings.hydromancer_weight}
    lines = [f"# effective configuration ({config.path or 'defaults'}, the environment, "
             "the flags)", f"lake = {_value(str(lake))}"]
    if config.ping_url:
        lines.append(f"ping_url = {_value(shown(config.ping_url))}  # path masked")
    for name in config.used_sources():
        source = config.source(name)
        lines += ["", f"[sources.{name}]", f"url = {_value(urls[name])}"]
        env_name = REGISTRY[name].key_env
        if env_name is not None:
            state = "set (masked)" if settings.key(env_name) else "NOT SET"
            lines.append(f"key = {_value(state)}  # from ${source.key_env or env_name}")
        if name in weights:
            lines.append(f"weight_per_minute = {_value(weights[name])}")
        rate = REGISTRY[name].rate(source.rate, source.plan)
        if rate is not None:
            lines.append(f"rate = {_value(rate)}  # requests/s")
    m = config.markets
    lines += ["", "[markets]", f"select = {_value(m.select)}"]
    if m.select == "list":
        lines.append(f"list = {_value(m.names)}")
    else:
        lines += [f"top = {m.top}"] if m.top else []
        lines += [f"spot = {_value(m.spot)}", f"hip3 = {_value(m.hip3)}",
                  f"delisted = {_value(m.delisted)}"]
    lines += ["", "[candles]", f"deep_sources = {_value(config.deep_sources)}"]
    for candle in config.candles:
        lines += ["", f"[candles.{candle.source}]", f"intervals = {_value(candle.intervals)}",
                  f"start = {_value(candle.start.text)}"]
    lines += ["", "[funding]", f"enabled = {_value(config.funding)}",
              f"start = {_value(config.funding_start.text)}",
              "", "[asset_ctxs]", f"enabled = {_value(config.asset_ctxs)}",
              f"markets = {_value(config.asset_ctxs_scope)}",
              "", "[after]", f"compact = {_value(config.compact)}",
              f"verify = {_value(config.verify)}"]
    return "\n".join(lines)
