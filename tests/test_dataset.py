"Leakage and windowing properties of the dataset index (cryptotft.dataset)."

import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from cryptotft.config import Config, ConfigError, DataError, with_overrides
from cryptotft.dataset import (
    SPLITS,
    VOLATILITY_FLOOR_PCT,
    dataset_arrays,
    dataset_from_db,
    dataset_from_frame,
    export_dataset,
    fit_scaler,
    load_dataset,
    record_splits,
    reindex_if_needed,
    split_table,
    valid_window_ends,
    window_rows,
)
from conftest import tiny_processed
from cryptotft.labels import expected_returns, labels_for_storage
from cryptotft.synthetic import synthetic_market

BAR = 900_000
FEATURES = ['log_return', 'range_pct', 'vol_16']


def processed(candles, funding, horizon=8):
    "A processed frame with three scale-free features and the labels, per symbol."
    return tiny_processed(candles, funding, horizon=horizon)


def small_cfg(**training):
    return with_overrides(
        Config(),
        model=dict(sequence_length=16, prediction_horizon=8),
        training=dict(val_fraction=0.2, test_fraction=0.2, **training),
    )


@pytest.fixture(scope='module')
def market():
    return synthetic_market(('BTCUSDT', 'ETHUSDT', 'SOLUSDT'), days=12, seed=3)


def window_rows_of(ds, ends):
    return ends[:, None] + np.arange(-ds.sequence_length + 1, 1)


def test_windows_never_cross_a_punched_hole(market):
    candles, funding = market
    eth = np.flatnonzero(candles.symbol == 'ETHUSDT')
    hole = eth[500:530]  # 30 missing ETH bars in the middle
    df = processed(candles.drop(index=hole).reset_index(drop=True), funding)
    nan_row = df.index[(df.symbol == 'BTCUSDT')][700]
    df.loc[nan_row, 'range_pct'] = np.nan  # one broken feature row in BTC
    ds = dataset_from_frame(df, small_cfg(), FEATURES)
    hole_start = int(candles.timestamp[hole[0]].value // 1_000_000)
    bad_ts = int(pd.Timestamp(df.timestamp[nan_row]).value // 1_000_000)
    for e in ds.splits.values():
        rows = window_rows_of(ds, e)
        assert (np.diff(ds.timestamps[rows], axis=1) == BAR).all()  # consecutive bars only
        assert (ds.symbol_id[rows] == ds.symbol_id[e][:, None]).all()
        btc = ds.symbol_id[e] == ds.symbols.index('BTCUSDT')
        assert not (ds.timestamps[rows[btc]] == bad_ts).any()  # no BTC window reads the NaN row
        eth = ds.symbol_id[e] == ds.symbols.index('ETHUSDT')
        first, last = ds.timestamps[rows[eth, 0]], ds.timestamps[rows[eth, -1]]
        assert not ((first < hole_start) & (last > hole_start)).any()  # no ETH window spans the hole
    eth_id = ds.symbols.index('ETHUSDT')
    after = ds.timestamps[ds.symbol_id == eth_id]
    resume = after[after > hole_start].min()
    all_ends = np.concatenate(list(ds.splits.values()))
    eth_ends = all_ends[ds.symbol_id[all_ends] == eth_id]
    assert (
        ds.timestamps[eth_ends][ds.timestamps[eth_ends] >= resume].min() == resume + 15 * BAR
    )  # first full window after


def test_no_training_label_horizon_reaches_validation_or_test(market):
    candles, funding = market
    late = candles[
        (candles.symbol != 'SOLUSDT') | (candles.timestamp >= candles.timestamp.min() + pd.Timedelta(days=4))
    ]
    ds = dataset_from_frame(processed(late.reset_index(drop=True), funding), small_cfg(walk_forward_folds=2), FEATURES)
    H = ds.config['index']['prediction_horizon']
    assert ds.folds == [0, 1, 2]
    for k in ds.folds:
        tr, va = ds.timestamps[ds.ends('train', k)], ds.timestamps[ds.ends('val', k)]
        te = ds.timestamps[ds.ends('test', k)]
        assert tr.max() + H * BAR < va.min()  # across all symbols: common boundary + purge
        assert va.max() + H * BAR < te.min()  # each fold's own test block
    assert ds.timestamps[ds.ends('train', 1)].max() < ds.timestamps[ds.ends('train', 2)].max()  # expanding


def test_split_boundaries_are_common_across_symbols(market):
    candles, funding = market
    ds = dataset_from_frame(processed(candles, funding), small_cfg(), FEATURES)
    t = split_table(ds, 'r')
    assert t[t.split == 'train'].end_ts.max() < t[t.split == 'val'].start_ts.min()
    assert t[t.split == 'val'].end_ts.max() < t[t.split == 'test'].start_ts.min()
    assert set(t.symbol) == {'BTCUSDT', 'ETHUSDT', 'SOLUSDT'} and (t.n_samples > 0).all()


def test_scaler_statistics_equal_those_of_the_training_rows_alone(market):
    candles, funding = market
    df = processed(candles, funding)
    ds = dataset_from_frame(df, small_cfg(), FEATURES)
    rows = window_rows(ds.ends('train'), ds.sequence_length, len(ds.timestamps))
    x = ds.features[rows].astype(np.float64)
    assert np.allclose(ds.scaler['mean'], x.mean(0), rtol=1e-5, atol=1e-7)
    assert np.allclose(ds.scaler['std'], x.std(0), rtol=1e-4, atol=1e-7)
    assert ds.timestamps[rows].max() < ds.timestamps[ds.ends('val')].min()  # no validation bar inside
    # changing only validation/test features leaves the scaler untouched
    df2 = df.copy()
    late = pd.to_datetime(df2.timestamp) >= pd.Timestamp(ds.timestamps[ds.ends('val')].min(), unit='ms', tz='UTC')
    df2.loc[late, 'log_return'] *= 100
    ds2 = dataset_from_frame(df2, small_cfg(), FEATURES)
    assert np.array_equal(ds2.scaler['mean'], ds.scaler['mean']) and np.array_equal(ds2.scaler['std'], ds.scaler['std'])


def test_scaler_ignores_rows_outside_the_mask():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    rows = np.zeros(10, bool)
    rows[:4] = True
    s = fit_scaler(x, rows, chunk=3)
    assert np.allclose(s['mean'], x[:4].mean(0)) and np.allclose(s['std'], x[:4].std(0))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.booleans(), st.booleans(), st.booleans()), min_size=1, max_size=40),
    st.integers(1, 6),
)
def test_valid_window_ends_match_a_brute_force_scan(rows, T):
    # per row: symbol step, gap before it, row usable, label present
    sid = np.cumsum([r[0] for r in rows]).astype(np.int32)
    ts = np.cumsum([BAR * (2 if r[1] else 1) for r in rows]).astype(np.int64)
    ok, lab = np.array([r[2] for r in rows]), np.array([r[3] for r in rows])
    expect = [
        t
        for t in range(len(rows))
        if t >= T - 1
        and lab[t]
        and ok[t - T + 1 : t + 1].all()
        and (sid[t - T + 1 : t + 1] == sid[t]).all()
        and (np.diff(ts[t - T + 1 : t + 1]) == BAR).all()
    ]
    assert valid_window_ends(sid, ts, ok, lab, T).tolist() == expect


def test_snapshot_is_one_self_contained_file_and_reindexes_without_a_database(market, tmp_path):
    candles, funding = market
    ds = dataset_from_frame(processed(candles, funding), small_cfg(), FEATURES)
    path = export_dataset(ds, tmp_path / 'ds.npz')
    assert [p.name for p in tmp_path.iterdir()] == ['ds.npz']
    back = load_dataset(path)
    for k in ('features', 'labels', 'symbol_id', 'timestamps', 'row_ok'):
        assert np.array_equal(getattr(back, k), getattr(ds, k), equal_nan=True)
    assert back.symbols == ds.symbols and back.feature_names == ds.feature_names
    assert back.config['data_range'] == ds.config['data_range']
    strided = reindex_if_needed(back, small_cfg(window_stride=3))
    assert np.array_equal(strided.ends('train'), ds.ends('train')[::3])
    assert np.array_equal(strided.ends('test'), ds.ends('test'))


def test_dataset_from_db_feeds_the_indicator_model_features_and_records_splits(tmp_path):
    indicators = pytest.importorskip('cryptotft.indicators')
    from cryptotft.db import connect

    db = connect(f"sqlite:///{tmp_path / 'x.db'}")
    db.init_db()
    candles, funding = synthetic_market(('BTCUSDT', 'ETHUSDT'), days=14, seed=1)
    db.upsert('raw_market_data', candles.assign(interval='15'))
    db.upsert('funding_rates', funding)
    indicators.prepare_indicators(db, progress=False)
    for s, c in candles.groupby('symbol'):
        c = c.reset_index(drop=True)
        lab = labels_for_storage(expected_returns(c, horizon=8))
        db.upsert('processed_market_data', pd.concat([c[['symbol', 'timestamp']].assign(interval='15'), lab], axis=1))
    ds = dataset_from_db(db, small_cfg())
    assert ds.feature_names == list(indicators.MODEL_FEATURES)
    assert ds.symbols == ['BTCUSDT', 'ETHUSDT']
    first_end = ds.timestamps[np.concatenate(list(ds.splits.values()))].min()
    assert first_end >= ds.timestamps.min() + (indicators.WARMUP_BARS + 15) * BAR  # warm-up rows never in a window
    assert record_splits(db, ds, 'run-x') == len(split_table(ds, 'run-x'))
    stored = db.read_sql("SELECT * FROM training_sequences WHERE run_id = 'run-x'")
    assert set(stored.split) == set(SPLITS) and stored.n_samples.sum() == sum(len(v) for v in ds.splits.values())


def test_reexport_leaves_a_hard_linked_run_copy_unchanged(market, tmp_path):
    candles, funding = market
    first = dataset_from_frame(processed(candles, funding), small_cfg(), FEATURES)
    snapshot = export_dataset(first, tmp_path / 'dataset.npz')
    run_dir = tmp_path / 'runs' / 'r1'
    run_dir.mkdir(parents=True)
    os.link(snapshot, run_dir / 'dataset.npz')  # what train's _snapshot does with a loaded snapshot
    other_candles, other_funding = synthetic_market(('BTCUSDT', 'ETHUSDT'), days=10, seed=9)
    second = dataset_from_frame(processed(other_candles, other_funding), small_cfg(), FEATURES)
    export_dataset(second, snapshot)
    kept, new = load_dataset(run_dir / 'dataset.npz'), load_dataset(snapshot)
    for k in ('features', 'labels', 'symbol_id', 'timestamps', 'row_ok'):
        assert np.array_equal(getattr(kept, k), getattr(first, k), equal_nan=True), k
        assert np.array_equal(getattr(new, k), getattr(second, k), equal_nan=True), k
    assert all(np.array_equal(kept.splits[k], first.splits[k]) for k in first.splits)
    assert kept.symbols == first.symbols and new.symbols == ['BTCUSDT', 'ETHUSDT']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['dataset.npz', 'runs']  # no temporary file left


def test_dataset_from_db_reads_one_symbol_at_a_time_and_only_needed_columns(market, tmp_path):
    from cryptotft.db import Database, connect

    class RecordingDatabase(Database):
        "A Database that notes every query it reads."

        queries = []

        def read_sql(self, sql, params=None):
            self.queries.append((sql, dict(params or {})))
            return super().read_sql(sql, params)

    candles, funding = market
    frame = processed(candles, funding).assign(unused_wide=1.0, another_indicator=2.0)
    db = RecordingDatabase(connect(f"sqlite:///{tmp_path / 'x.db'}").engine)
    db.init_db()
    db.upsert('processed_market_data', frame.assign(interval='15'))
    got = dataset_from_db(db, small_cfg(), features=FEATURES)
    want = dataset_from_frame(frame, small_cfg(), FEATURES)
    for k in ('features', 'labels', 'symbol_id', 'timestamps', 'row_ok'):
        assert np.array_equal(getattr(got, k), getattr(want, k), equal_nan=True), k
    assert got.splits.keys() == want.splits.keys() and all(
        np.array_equal(got.splits[k], want.splits[k]) for k in want.splits
    )
    reads = [(q, p) for q, p in db.queries if 'FROM processed_market_data' in q]
    assert len(reads) == 3  # one per symbol
    for q, p in reads:
        assert '*' not in q and 'unused_wide' not in q and 'another_indicator' not in q, q
        assert sum(k.startswith('s') and k[1:].isdigit() for k in p) == 1, p


def indicator_rows(candles):
    "The real indicator model view (atr_pct among it) and labels of one symbol's candles."
    from cryptotft.indicators import compute_indicators, model_features

    c = candles.sort_values('timestamp').reset_index(drop=True)
    ind = compute_indicators(c, '15')
    view = model_features(pd.concat([c, ind], axis=1))
    lab = labels_for_storage(expected_returns(c, horizon=8))
    return pd.concat([c[['symbol', 'timestamp']], view[['rsi', 'atr_pct']], lab], axis=1)


def test_volatility_scale_round_trips_and_is_the_causal_atr_at_the_window_end(market):
    candles, _ = market
    btc = candles[candles.symbol == 'BTCUSDT'].sort_values('timestamp').reset_index(drop=True)
    cfg = small_cfg()
    ds = dataset_from_frame(indicator_rows(btc), cfg, features=['rsi', 'atr_pct'])
    ends = np.concatenate([ds.ends(s) for s in SPLITS])
    scale = ds.target_scale('volatility', ends)
    assert (scale >= VOLATILITY_FLOOR_PCT).all() and np.allclose(scale, 100 * ds.features[ends, 1])
    y = ds.targets('regression')[ends]
    scaled = ds.targets('regression', 'volatility')[ends]
    np.testing.assert_allclose(scaled, y / scale[:, None], rtol=1e-6)
    np.testing.assert_allclose(ds.unscale(scaled, ends, 'volatility'), y, rtol=1e-5, atol=1e-6)  # round trip
    quantiles = np.stack([scaled, scaled - 1, scaled, scaled + 1], -1)  # (n, 2, 1 + Q) like a model's output
    np.testing.assert_allclose(ds.unscale(quantiles, ends, 'volatility')[:, :, 0], y, rtol=1e-5, atol=1e-6)
    # causality: the scale at a window end is the same when every later bar is changed or cut off
    t = int(ds.ends('val')[0])
    later = btc.copy()
    later.loc[t + 1 :, ['high', 'close']] *= 1.3
    changed = dataset_from_frame(indicator_rows(later), cfg, features=['rsi', 'atr_pct'])
    cut = dataset_arrays(indicator_rows(btc.iloc[: t + 1]), features=['rsi', 'atr_pct'])
    assert changed.target_scale('volatility', [t]) == ds.target_scale('volatility', [t])
    assert np.isclose(100 * cut.features[t, 1], ds.target_scale('volatility', [t])[0])
    assert changed.target_scale('volatility', [t + 5]) != ds.target_scale('volatility', [t + 5])  # later ones move


def test_target_scale_refuses_what_it_cannot_do(market):
    candles, funding = market
    ds = dataset_from_frame(processed(candles, funding), small_cfg(), features=FEATURES)
    assert (ds.target_scale('none') == 1).all() and ds.targets('regression', 'none') is not None
    with pytest.raises(DataError, match='atr_pct'):
        ds.targets('regression', 'volatility')
    with pytest.raises(ConfigError, match='target_scale'):
        ds.target_scale('range')
    with pytest.raises(ConfigError, match='regression'):
        ds.targets('classification', 'volatility')
