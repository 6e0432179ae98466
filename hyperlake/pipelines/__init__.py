"""The stages that write: extraction (``runner`` walks every source registered in
``sources``; ``candles`` and ``funding`` are its jobs), ``universe`` (market names)
and ``compact`` (checkpoints into the lake)."""
