"The classification task end to end on the tiny SYNTHETIC run's data: train -> evaluate -> backtest -> predict."

import pytest


@pytest.fixture(scope='module')
def cls_run(tiny_run):
    from cryptotft.dataset import dataset_from_db
    from cryptotft.train import train
    from conftest import TINY_FEATURES

    cfg, db, _, _ = tiny_run
    ds = dataset_from_db(db, cfg, features=TINY_FEATURES)
    res = train(cfg, ds, task='classification', run_id='tiny-cls', db=db, progress=False, live_plots=False)
    return cfg, db, res


def test_classification_run_scores_probabilities_next_to_baselines(cls_run):
    from cryptotft.evaluate import evaluate_run

    cfg, db, res = cls_run
    assert all(0 <= res.metrics['test'][f'{side}_auc'] <= 1 for side in ('buy', 'sell'))
    table = evaluate_run(cfg, 'tiny-cls', runs_dir=cfg.training.runs_dir, db=db, n_boot=50)
    model = table[(table.predictor == 'model') & (table.split == 'test')]
    assert {'accuracy', 'precision', 'recall', 'f1', 'auc'} <= set(model.metric)
    assert {'lightgbm', 'always_long', 'always_short'} <= set(table.predictor)
    auc = model[model.metric == 'auc'].value.to_numpy()
    assert ((auc >= 0) & (auc <= 1)).all()
    ok = model.dropna(subset=['lo', 'hi'])
    assert (ok.lo <= ok.value + 1e-12).all() and (ok.value <= ok.hi + 1e-12).all(), model[
        ['metric', 'value', 'lo', 'hi']
    ]
    across = {'ic_time', 'rank_ic_time', 'rank_ic_time_tied', 'rank_ic_neutral', 'top_quarter_excess'}
    assert set(model.metric[model.lo.isna()]) <= across, model[model.lo.isna()]  # 2 symbols: no cross-section


def test_classification_backtest_and_predictions_use_probabilities(cls_run):
    from cryptotft.backtest import backtest_run
    from cryptotft.predict import predict_latest, predict_run

    cfg, db, res = cls_run
    bt = backtest_run(cfg, 'tiny-cls', runs_dir=cfg.training.runs_dir)
    assert bt.threshold == 0.5 and set(bt.summary.index) >= {'model', 'random_entry', 'always_long'}
    n = predict_run(cfg, db, 'tiny-cls', runs_dir=cfg.training.runs_dir)
    stored = db.read_sql("SELECT buy_prob, sell_prob, buy_q50 FROM model_predictions WHERE run_id = 'tiny-cls'")
    assert n == len(stored) > 0 and stored.buy_q50.isna().all()
    assert ((stored.buy_prob >= 0) & (stored.buy_prob <= 1) & (stored.sell_prob >= 0) & (stored.sell_prob <= 1)).all()
    latest = predict_latest(cfg, db, 'tiny-cls', runs_dir=cfg.training.runs_dir)
    assert len(latest) == 2 and latest.prob.between(0, 1).all() and set(latest.signal) <= {'long', 'short', 'none'}
