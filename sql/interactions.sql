-- One row per (user, item) from accepted events: the implicit-feedback matrix ALS trains on.
-- weight sums event weights; exclude marks items the user owns or judged (never recommended again).
-- Parameters: $excluding_types (quoted list).
SELECT
  user_id,
  item_id,
  SUM(weight) AS weight,
  COUNT(*) AS n_events,
  MIN(ts) AS first_ts,
  MAX(ts) AS last_ts,
  MAX(event_type IN ($excluding_types)) AS exclude
FROM silver_events
GROUP BY user_id, item_id
