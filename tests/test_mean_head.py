"""The mean head on a SYNTHETIC market with planted signals: one that moves the mean of the managed trade's
return but not its median, and one that moves the median but not the mean. Ranking by the right output finds
each edge; ranking by the other does not."""

import numpy as np
import pandas as pd
import pytest

from cryptotft.config import Config, from_ms, with_overrides
from cryptotft.dataset import dataset_from_frame
from cryptotft.evaluate import eval_frame, forecast, metrics_table
from cryptotft.train import predict_windows, train

STOP = -1.21  # the stop's return after fees, as in the labels


def planted_returns(x, kind, rng):
    "Returns of trades whose outcome depends on the signal `x` as `kind` says."
    if kind == 'mean':  # the stop rate stays at 60 %: the median is the stop; x decides how far winners run
        stop = rng.random(len(x)) < 0.6
        win = np.where(rng.random(len(x)) < 1 / (1 + np.exp(-3 * x)), 5.5, 0.6)
    else:  # x moves the stop rate across 50 % and winners shrink to keep the mean at 0
        p = 0.5 - 0.3 * np.tanh(2 * x)
        stop = rng.random(len(x)) < p
        win = -STOP * p / (1 - p)
    return np.where(stop, STOP, win)


def planted_frame(kind, n_bars=2500, n_symbols=8, seed=0):
    "Processed rows: one feature `x` per bar (the signal) and the two return labels it shapes."
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(n_symbols):
        x = rng.normal(size=n_bars).astype(np.float32)
        frames.append(
            pd.DataFrame(
                {
                    'symbol': f'S{s}USDT',
                    'timestamp': from_ms(1_700_000_000_000 + np.arange(n_bars) * 900_000),
                    'x': x,
                    'buy_return': planted_returns(x, kind, rng),
                    'sell_return': planted_returns(-x, kind, rng),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _check_planted(kind):
    "The table of the trained model's mean and median outputs on the test period of a planted market."
    df = planted_frame(kind)
    truth = df.groupby(df['x'] > 0)['buy_return'].agg(['mean', 'median'])
    if kind == 'mean':
        assert (truth['median'] == STOP).all() and truth.loc[True, 'mean'] > truth.loc[False, 'mean'] + 0.5
    else:
        assert truth.loc[True, 'median'] > 0 > truth.loc[False, 'median'] and truth['mean'].abs().max() < 0.1
    cfg = with_overrides(
        Config(),
        model=dict(
            sequence_length=4,
            prediction_horizon=2,
            d_model=8,
            num_heads=2,
            epochs=6,
            batch_size=128,
            learning_rate=1e-2,
        ),
        training=dict(val_fraction=0.15, test_fraction=0.25, seed=1),
    )
    ds = dataset_from_frame(df, cfg, features=['x'])
    return cfg, ds


@pytest.mark.parametrize('kind', ['mean', 'median'])
def test_each_output_finds_the_edge_that_moves_it(kind, tmp_path):
    cfg, ds = _check_planted(kind)
    res = train(cfg, ds, run_id=f'planted-{kind}', runs_dir=tmp_path, progress=False, live_plots=False)
    ends = ds.ends('test')
    f = forecast(predict_windows(res.model, ds, ends), cfg.model.quantiles)
    assert f.kind == 'mean'
    table = metrics_table(eval_frame(ds, ends), {'mean': f.point, 'median': f.median}, n_boot=200, block=96)
    key = table[table['reference'] == 'zero'].set_index(['predictor', 'side', 'metric'])
    for k, side in enumerate(('buy', 'sell')):
        if kind == 'mean':
            ic = key.loc[('mean', side, 'rank_ic_time')]
            assert ic['value'] > 0.05 and ic['lo'] > 0, (side, ic.to_dict())  # the mean head ranks the edge
            trade = key.loc[('mean', side, 'avg_trade')]
            assert trade['lo'] > 0, (side, trade.to_dict())  # and its 'expected return > 0' trades make money
            # the median sits at the stop whatever x says: 'q50 > 0' calls every trade a loser
            assert np.mean(f.median[:, k] > 0) < 0.01 and np.all(np.abs(f.median[:, k] - STOP) < 0.5)
        else:
            ic = key.loc[('median', side, 'rank_ic_time')]
            assert ic['value'] > 0.05 and ic['lo'] > 0, (side, ic.to_dict())  # the median output ranks its edge
            trade = key.loc[('mean', side, 'avg_trade')]
            assert trade['lo'] <= 0 <= trade['hi'], (side, trade.to_dict())  # no expected return to trade on
