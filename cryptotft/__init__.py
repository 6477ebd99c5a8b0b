"""Temporal Fusion Transformer research system for Bybit USDT-perpetual futures: download, indicators, expected-return labels, TFT, honest evaluation.

Modules:

- `cryptotft.config`: `config.yaml` -> a validated, typed `Config` -> function arguments. Plus the small error tree and the epoch-millisecond helpers every other chapter shares.
- `cryptotft.db`: One schema, two real backends: an embedded SQLite file (the default, no server) and PostgreSQL. Idempotent upserts, bulk writes that are fast on both, and reads into pandas.
- `cryptotft.synthetic`: A seeded generator of realistic 15-minute perpetual-futures candles and funding rates, for tests, examples and the offline demo. Everything it makes is labelled synthetic."""

__version__ = "0.1.0"
