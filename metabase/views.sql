-- cryptotft analytics views for Metabase (PostgreSQL).
-- GENERATED from nbs/13_metabase.ipynb (cryptotft.metabase.VIEWS_SQL): edit there, not here.
-- Needs the cryptotft tables and the label columns written by `cryptotft prepare`.
-- Apply with `cryptotft metabase views` or `psql -f metabase/views.sql`.

CREATE OR REPLACE VIEW v_data_coverage AS
WITH c AS (
  SELECT symbol, "interval", COUNT(*) AS bars, MIN("timestamp") AS first_ms, MAX("timestamp") AS last_ms,
         (CASE WHEN "interval" = 'D' THEN 1440 ELSE "interval"::int END) * 60000::bigint AS bar_ms
  FROM raw_market_data GROUP BY symbol, "interval"),
f AS (SELECT symbol, COUNT(*) AS funding_events, MAX("timestamp") AS last_funding_ms
      FROM funding_rates GROUP BY symbol),
p AS (SELECT symbol, "interval", COUNT(*) AS processed_bars FROM processed_market_data GROUP BY symbol, "interval")
SELECT c.symbol, c."interval", to_timestamp(c.first_ms / 1000.0) AS first_bar, to_timestamp(c.last_ms / 1000.0) AS last_bar, c.bars,
       (c.last_ms - c.first_ms) / c.bar_ms + 1 AS expected_bars,
       (c.last_ms - c.first_ms) / c.bar_ms + 1 - c.bars AS missing_bars,
       round(100.0 * c.bars / ((c.last_ms - c.first_ms) / c.bar_ms + 1), 3) AS coverage_pct,
       COALESCE(p.processed_bars, 0) AS processed_bars, COALESCE(f.funding_events, 0) AS funding_events,
       to_timestamp(f.last_funding_ms / 1000.0) AS last_funding
FROM c LEFT JOIN f ON f.symbol = c.symbol LEFT JOIN p ON p.symbol = c.symbol AND p."interval" = c."interval";

CREATE OR REPLACE VIEW v_label_stats_monthly AS
SELECT symbol, "interval", date_trunc('month', to_timestamp("timestamp" / 1000.0) AT TIME ZONE 'UTC') AS month, COUNT(*) AS bars, COUNT(buy_return) AS labelled_bars,
       avg(buy_return) AS buy_return_mean, avg(sell_return) AS sell_return_mean,
       stddev_samp(buy_return) AS buy_return_std, stddev_samp(sell_return) AS sell_return_std,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY buy_return) AS buy_return_median,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY sell_return) AS sell_return_median,
       avg(buy_profit) AS buy_win_rate, avg(sell_profit) AS sell_win_rate
FROM processed_market_data GROUP BY 1, 2, 3;

CREATE OR REPLACE VIEW v_model_leaderboard AS
WITH r AS (SELECT *, regexp_replace(COALESCE(NULLIF(metrics, ''), '{}'), '-?Infinity|NaN', 'null', 'g')::json AS m
           FROM model_metadata)
SELECT run_id, to_timestamp(created_at / 1000.0) AS created, task, status, symbols,
       to_timestamp(data_start / 1000.0) AS data_from, to_timestamp(data_end / 1000.0) AS data_to,
       CASE WHEN json_typeof(m #> '{best_val_loss}') = 'number' THEN (m #>> '{best_val_loss}')::float8 END AS best_val_loss,
       CASE WHEN json_typeof(m #> '{epochs_run}') = 'number' THEN (m #>> '{epochs_run}')::float8 END AS epochs_run,
       CASE WHEN json_typeof(m #> '{test,buy_rank_ic_time}') = 'number' THEN (m #>> '{test,buy_rank_ic_time}')::float8 END AS test_buy_rank_ic_time,
       CASE WHEN json_typeof(m #> '{test,sell_rank_ic_time}') = 'number' THEN (m #>> '{test,sell_rank_ic_time}')::float8 END AS test_sell_rank_ic_time,
       CASE WHEN json_typeof(m #> '{test,buy_direction_accuracy}') = 'number' THEN (m #>> '{test,buy_direction_accuracy}')::float8 END AS test_buy_direction_accuracy,
       CASE WHEN json_typeof(m #> '{test,sell_direction_accuracy}') = 'number' THEN (m #>> '{test,sell_direction_accuracy}')::float8 END AS test_sell_direction_accuracy,
       CASE WHEN json_typeof(m #> '{test,buy_auc}') = 'number' THEN (m #>> '{test,buy_auc}')::float8 END AS test_buy_auc,
       CASE WHEN json_typeof(m #> '{test,sell_auc}') = 'number' THEN (m #>> '{test,sell_auc}')::float8 END AS test_sell_auc,
       CASE WHEN json_typeof(m #> '{test,buy_win_rate}') = 'number' THEN (m #>> '{test,buy_win_rate}')::float8 END AS test_buy_win_rate,
       CASE WHEN json_typeof(m #> '{test,sell_win_rate}') = 'number' THEN (m #>> '{test,sell_win_rate}')::float8 END AS test_sell_win_rate,
       CASE WHEN json_typeof(m #> '{test,buy_avg_trade}') = 'number' THEN (m #>> '{test,buy_avg_trade}')::float8 END AS test_buy_avg_trade,
       CASE WHEN json_typeof(m #> '{test,sell_avg_trade}') = 'number' THEN (m #>> '{test,sell_avg_trade}')::float8 END AS test_sell_avg_trade,
       metrics
FROM r;

CREATE OR REPLACE VIEW v_latest_signals AS
SELECT DISTINCT ON (p.run_id, p.symbol) p.run_id, p.symbol, to_timestamp(p."timestamp" / 1000.0) AS signal_time,
       CASE WHEN p.buy_q50 IS NOT NULL OR p.sell_q50 IS NOT NULL THEN CASE WHEN GREATEST(COALESCE(p.buy_expected_return, p.buy_q50), COALESCE(p.sell_expected_return, p.sell_q50)) <= 0 THEN 'flat' WHEN COALESCE(COALESCE(p.buy_expected_return, p.buy_q50), '-infinity') >= COALESCE(COALESCE(p.sell_expected_return, p.sell_q50), '-infinity') THEN 'long' ELSE 'short' END
            WHEN p.buy_prob IS NULL AND p.sell_prob IS NULL THEN NULL
            WHEN GREATEST(p.buy_prob, p.sell_prob) <= 0.5 THEN 'flat' WHEN COALESCE(p.buy_prob, 0) >= COALESCE(p.sell_prob, 0) THEN 'long' ELSE 'short' END AS signal,
       GREATEST(p.buy_expected_return, p.sell_expected_return) AS expected_return,
       CASE WHEN COALESCE(COALESCE(p.buy_expected_return, p.buy_q50), '-infinity') >= COALESCE(COALESCE(p.sell_expected_return, p.sell_q50), '-infinity')
            THEN p.buy_q50 ELSE p.sell_q50 END AS median_return,
       CASE WHEN p.buy_expected_return IS NOT NULL OR p.sell_expected_return IS NOT NULL THEN 'mean'
            WHEN p.buy_q50 IS NOT NULL OR p.sell_q50 IS NOT NULL THEN 'median only' ELSE 'probability' END
            AS forecast,
       p.buy_expected_return, p.sell_expected_return, p.buy_q10, p.buy_q50, p.buy_q90,
       p.sell_q10, p.sell_q50, p.sell_q90, p.buy_prob, p.sell_prob, m.task, to_timestamp(m.created_at / 1000.0) AS run_created
FROM model_predictions p LEFT JOIN model_metadata m ON m.run_id = p.run_id
ORDER BY p.run_id, p.symbol, p."timestamp" DESC;

CREATE OR REPLACE VIEW v_prediction_vs_realised_monthly AS
SELECT run_id, symbol, date_trunc('month', to_timestamp("timestamp" / 1000.0) AT TIME ZONE 'UTC') AS month, COUNT(*) AS predictions,
       avg(COALESCE(buy_expected_return, buy_q50)) AS buy_predicted_mean, avg(buy_q50) AS buy_predicted_median,
       avg(buy_return) AS buy_realised_mean,
       avg(COALESCE(sell_expected_return, sell_q50)) AS sell_predicted_mean, avg(sell_q50) AS sell_predicted_median,
       avg(sell_return) AS sell_realised_mean,
       corr(COALESCE(buy_expected_return, buy_q50), buy_return) AS buy_corr, corr(COALESCE(sell_expected_return, sell_q50), sell_return) AS sell_corr,
       avg(CASE WHEN COALESCE(buy_expected_return, buy_q50) IS NULL OR buy_return IS NULL THEN NULL WHEN (COALESCE(buy_expected_return, buy_q50) > 0) = (buy_return > 0) THEN 1.0 ELSE 0.0 END) AS buy_sign_hit_rate,
       avg(CASE WHEN buy_q10 IS NULL OR buy_q90 IS NULL OR buy_return IS NULL THEN NULL WHEN buy_return BETWEEN buy_q10 AND buy_q90 THEN 1.0 ELSE 0.0 END) AS buy_band_coverage,
       avg(CASE WHEN COALESCE(sell_expected_return, sell_q50) IS NULL OR sell_return IS NULL THEN NULL WHEN (COALESCE(sell_expected_return, sell_q50) > 0) = (sell_return > 0) THEN 1.0 ELSE 0.0 END) AS sell_sign_hit_rate,
       avg(CASE WHEN sell_q10 IS NULL OR sell_q90 IS NULL OR sell_return IS NULL THEN NULL WHEN sell_return BETWEEN sell_q10 AND sell_q90 THEN 1.0 ELSE 0.0 END) AS sell_band_coverage,
       avg(buy_prob) AS buy_prob_mean, avg(sell_prob) AS sell_prob_mean
FROM model_predictions WHERE buy_return IS NOT NULL OR sell_return IS NOT NULL
GROUP BY 1, 2, 3;
