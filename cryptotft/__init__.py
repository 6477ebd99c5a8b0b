"""Temporal Fusion Transformer research system for Bybit USDT-perpetual futures: download, indicators, expected-return labels, TFT, honest evaluation.

Modules:

- `cryptotft.backtest`: What the signals would have made, as money, under the very trade simulation that produced the labels: one position per symbol, a fixed margin fraction per trade, fees and funding included.
- `cryptotft.cli`: A thin face over the library: one function per subcommand that parses its options, builds the config, calls one library function and turns domain errors into one line and an exit code.
- `cryptotft.config`: `config.yaml` -> a validated, typed `Config` -> function arguments. Plus the small error tree and the epoch-millisecond helpers every other chapter shares.
- `cryptotft.console`: What a user sees of a command besides its result: one line for every failure, no password anywhere, log records where they were asked for, and none of the libraries' start-up chatter.
- `cryptotft.context`: Inputs that look across symbols: BTC's and the market's returns and volatility, the symbol's strength relative to both, the funding rate and its clock, and the calendar of the bar being forecast. Every value at bar `t` is computed from data stamped at or before `t`.
- `cryptotft.dataset`: Model features and labels of every symbol as contiguous float32 arrays, an integer array of valid window ends per split, purged time splits with common boundaries, a training-rows scaler, and a one-file snapshot that trains without a database.
- `cryptotft.db`: One schema, two real backends: an embedded SQLite file (the default, no server) and PostgreSQL. Idempotent upserts, bulk writes that are fast on both, and reads into pandas.
- `cryptotft.download`: Candles and funding rates of Bybit USDT perpetuals (v5 public API, category `linear`), downloaded incrementally, resumably and politely; plus the import of local kline files.
- `cryptotft.evaluate`: A model result is only worth reporting next to what a trivial predictor achieves, with an interval that respects the autocorrelation of crypto returns.
- `cryptotft.labels`: Every bar gets the realised return of a long and of a short trade opened at its close and managed by the risk profile (stop-loss, four partial take-profits, a stop ladder, fees and funding). A model that predicts these labels predicts the expected return of the strategy we would actually run.
- `cryptotft.metabase`: Analytics views over the cryptotft tables and a Metabase dashboard provisioned through its REST API, so that `docker compose up` plus one command gives every researcher the same dashboard.
- `cryptotft.pipeline`: One command from an empty machine to a trained, evaluated model with a report: init-db -> symbols -> download -> prepare -> train -> evaluate -> predict -> report.
- `cryptotft.portfolio`: The model's signals traded across symbols under a cap on open positions, each trade managed exactly as its label was simulated, and the equity marked to market at every bar's close.
- `cryptotft.predict`: A trained run scores two things: every window of its test period, stored in `model_predictions` next to the realised label (so dashboards compare forecast and outcome), and the newest bar of every symbol, returned as a signal table.
- `cryptotft.remote`: Train on a rented GPU (Vast.ai RTX 4090) without exposing the database: ship the code and a dataset snapshot over SSH, run the report notebook detached, stream its log, bring the run folder home.
- `cryptotft.synthetic`: A seeded generator of realistic 15-minute perpetual-futures candles and funding rates, for tests, examples and the offline demo. Everything it makes is labelled synthetic.
- `cryptotft.train`: A tf.data pipeline that gathers windows from the index, Keras `fit` with AdamW, cosine decay, early stopping, the best checkpoint, TensorBoard, a CSV log and live plots; every run leaves a self-contained folder that evaluation loads without a database."""

import os as _os

# TensorFlow's CPU allocator hands every large tensor to malloc, which maps fresh pages for it: each training
# step then pays a page fault and a zeroing for every page of its (V, N, d) temporaries. The BFC allocator
# keeps and reuses its memory: +65% TFT training samples/s at d_model 128 on 2 cores (README, Measured). It
# must be chosen before TensorFlow makes its first tensor, so here; a value the user set is kept.
_os.environ.setdefault('TF_CPU_ALLOCATOR_USE_BFC', 'true')

# XLA's CPU backend prefers 256-bit vectors by default (it spares older Intel CPUs the AVX-512 clock penalty).
# 512-bit code trains the TFT 16% faster at d_model 128 and 0-6% faster at 32 on a 2-core AMD EPYC Zen 4 host
# (README, Measured); a CPU without AVX-512 keeps its widest vectors. XLA reads its flags at its first
# compile, so here; a width the user set in XLA_FLAGS is kept, and so are the user's other flags.
_xla_flags = _os.environ.get('XLA_FLAGS', '')
if '--xla_cpu_prefer_vector_width' not in _xla_flags:
    _os.environ['XLA_FLAGS'] = f'{_xla_flags} --xla_cpu_prefer_vector_width=512'.strip()

__version__ = "0.1.0"
