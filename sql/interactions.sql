-- One row per (user, item) from accepted events: the implicit-feedback matrix ALS trains on.
-- weight sums event weights; exclude marks items the user owns or judged (never recommended again).
-- The sum runs in DECIMAL: a floating-point sum depends on the order rows arrive in, which Spark does
-- not fix, and a run must give the same bytes every time (re-runs, backfills, parallel dates).
-- Inputs: {silver_events} (a DataFrame, bound per call).
-- Parameters: $excluding_types (quoted list).
SELECT
  user_id,
  item_id,
  CAST(SUM(CAST(weight AS DECIMAL(38, 18))) AS DOUBLE) AS weight,
  COUNT(*) AS n_events,
  MIN(ts) AS first_ts,
  MAX(ts) AS last_ts,
  MAX(event_type IN ($excluding_types)) AS exclude
FROM {silver_events}
GROUP BY user_id, item_id
