from hyperlake.pipelines.stream.trades import Summary

SIZE_SCALE: float
PLAIN_SUM_LIMIT: float

def scan_trades(
    frame: bytes | str, /,
) -> tuple[str, list[int], list[int], list[float], list[float], bool, float, bool,
           Summary | None] | None: ...
