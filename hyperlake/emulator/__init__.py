"""A local, deterministic emulator of Hyperliquid, Hydromancer and Dwellir.

Every test, demo and benchmark talks to it over loopback. ``Emulator`` (in
``hyperlake.emulator.server``) starts it on free ports and hands back base URLs.
"""
