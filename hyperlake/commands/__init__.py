"""One module per ``hyperlake`` subcommand: ``register(subparsers)`` adds it."""
