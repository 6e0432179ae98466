"""The pure core of ``hyperlake stream``: live trades → exact OHLCV bars, with no I/O.

Three transforms a streamer chains for every WebSocket text frame, and nothing else:
no sockets, no files and no clock reads (the caller passes its clock in as ``now_ms``),
so each piece is trivially testable and fast enough to sit on the receive path.

- :mod:`.trades` parses a frame: a ``trades`` frame becomes a validated, columnar
  :class:`~.trades.TradeBatch`; acks, pongs, errors, candle updates, the greeting and
  other channels come back as their own small types; anything else raises
  :class:`~.trades.MalformedFrame` (an ``InvalidRecord``).
- :mod:`.dedupe` drops trades already seen (by ``tid``) with memory bounded by an
  exchange-time horizon, so the replay after every (re)subscribe is never counted twice.
- :mod:`.bars` buckets trades by exchange time into every requested interval at once
  and closes bars at a wall-clock deadline; late trades re-emit the corrected bar.

Typical use (frames as the exchange sends them, one coin each)::

    dedupe = TradeDeduper()
    bars = BarAggregator(["1s", "1m", "5m"], grace_ms=2_000, start_ms=now_ms)
    frame = parse_frame(text)                # per frame received
    if isinstance(frame, TradeBatch):
        bars.add(dedupe.admit(frame))
    for bar in bars.close_due(now_ms):       # from a timer, every few hundred ms
        writer.put(bar.coin, bar.interval, bar.row)   # candle_table(...) per series

``close_due`` returns each bar once when its deadline passes and again (a higher
``revision``, a later ``fetched_at``) whenever late trades change it; ``open_bars``
shows what is still open, for a live view or a flush on shutdown.
"""
