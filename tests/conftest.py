"Shared pytest fixtures: throw-away databases and a tiny trained run."

import numpy as np
import pandas as pd
import pytest

from cryptotft.db import connect
from pgutil import throwaway_pg_url


@pytest.fixture
def sqlite_url(tmp_path):
    "URL of a fresh SQLite file in the test's temporary folder."
    return f"sqlite:///{tmp_path}/cryptotft.db"


@pytest.fixture(params=['sqlite', 'postgresql'])
def db_url(request, tmp_path):
    "URL of a fresh database, once SQLite and once a throw-away PostgreSQL (skipped where there is none)."
    if request.param == 'sqlite':
        yield f"sqlite:///{tmp_path}/test.db"
    else:
        with throwaway_pg_url() as url:
            yield url


@pytest.fixture
def sqlite_db(sqlite_url):
    "A connected, initialised SQLite `Database`."
    db = connect(sqlite_url)
    db.init_db()
    yield db
    db.engine.dispose()


TINY_FEATURES = ['log_return', 'range_pct', 'vol_16']
TINY_HORIZON = 16


def tiny_processed(candles, funding, cfg=None, horizon=TINY_HORIZON, third='vol_16'):
    "SYNTHETIC processed rows: three scale-free features (the third: 16-bar `vol_16` or `mom_16`) and the labels."
    from cryptotft.labels import expected_returns, labels_for_storage

    out = []
    for s, c in candles.groupby('symbol', sort=False):
        c = c.reset_index(drop=True)
        lr = np.log(c.close).diff()
        f = pd.DataFrame(
            {
                'symbol': s,
                'interval': '15',
                'timestamp': c.timestamp,
                'log_return': lr,
                'range_pct': np.log(c.high / c.low),
                third: lr.rolling(16).std() if third == 'vol_16' else lr.rolling(16).mean(),
            }
        )
        lab = labels_for_storage(
            expected_returns(c, cfg.risk_profile if cfg else None, horizon, funding[funding.symbol == s])
        )
        out.append(pd.concat([f, lab], axis=1))
    return pd.concat(out, ignore_index=True)


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory):
    "(cfg, db, TrainResult, candles) of run 'tiny': a 1-epoch TFT on 16 SYNTHETIC days of two symbols in SQLite."
    from cryptotft.config import Config, with_overrides
    from cryptotft.dataset import dataset_from_db
    from cryptotft.synthetic import synthetic_market
    from cryptotft.train import train

    tmp = tmp_path_factory.mktemp('run')
    url = f"sqlite:///{tmp / 'test.db'}"
    cfg = with_overrides(
        Config(),
        database=dict(url_override=url),
        model=dict(
            sequence_length=8, prediction_horizon=TINY_HORIZON, d_model=8, num_heads=2, epochs=1, batch_size=256
        ),
        training=dict(val_fraction=0.2, test_fraction=0.25, walk_forward_folds=1, runs_dir=str(tmp / 'runs')),
    )
    db = connect(url)
    db.init_db()
    candles, funding = synthetic_market(('BTCUSDT', 'ETHUSDT'), days=16, seed=3)
    db.upsert('raw_market_data', candles.assign(interval='15'))
    db.upsert('funding_rates', funding)
    db.upsert('processed_market_data', tiny_processed(candles, funding, cfg))
    ds = dataset_from_db(db, cfg, features=TINY_FEATURES)
    res = train(cfg, ds, run_id='tiny', db=db, progress=False, live_plots=False)
    return cfg, db, res, candles
