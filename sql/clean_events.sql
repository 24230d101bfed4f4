-- Accepted and quarantined events for the run date, from bronze_events and the clean catalogue.
-- Events from the end of the run date up to $future_end belong to later runs and are not read;
-- events at or after $future_end are a broken clock and are quarantined.
-- Every row read is kept: accepted (reason IS NULL) or quarantined with the first reason that applies.
-- Inputs: {bronze_events}, {catalogue}, {non_products} (DataFrames, bound per call).
-- Parameters: $window_end, $future_end, $min_valid_ts (timestamps), $event_types (quoted list),
--             $bot_max_events_per_day.
WITH windowed AS (
  SELECT *
  FROM {bronze_events}
  WHERE ts IS NULL OR ts < TIMESTAMP '$window_end' OR ts >= TIMESTAMP '$future_end'
),
flagged AS (
  SELECT
    w.*,
    CASE
      WHEN w.parse_error IS NOT NULL THEN w.parse_error
      WHEN w.user_id IS NULL THEN 'missing_user_id'
      WHEN w.item_id IS NULL THEN 'missing_item_id'
      WHEN w.ts IS NULL THEN 'missing_timestamp'
      WHEN w.ts < TIMESTAMP '$min_valid_ts' THEN 'timestamp_too_old'
      WHEN w.ts >= TIMESTAMP '$future_end' THEN 'timestamp_in_future'
      WHEN w.event_type NOT IN ($event_types) THEN 'unknown_event_type'
      WHEN w.quantity IS NOT NULL AND w.quantity <= 0 THEN 'non_positive_quantity'
      WHEN w.event_type = 'purchase' AND w.value IS NOT NULL AND w.value <= 0
        THEN 'non_positive_price'
      WHEN np.item_id IS NOT NULL THEN 'non_product_item'
      WHEN c.item_id IS NULL THEN 'unknown_item'
    END AS base_reason
  FROM windowed AS w
  LEFT JOIN {catalogue} AS c ON w.item_id = c.item_id
  LEFT JOIN (SELECT DISTINCT item_id FROM {non_products}) AS np ON w.item_id = np.item_id
),
deduped AS (
  SELECT
    *,
    ROW_NUMBER() OVER (
      PARTITION BY base_reason IS NULL, user_id, item_id, ts, event_type, quantity, value
      -- ts_raw too: "0" and "1970-01-01T00:00:00Z" are one time, and the same copy must win
      -- on every re-run (the losers' records go to the quarantine).
      ORDER BY source_file, ts_raw
    ) AS dup_rank
  FROM flagged
),
with_dups AS (
  SELECT
    *,
    CASE
      WHEN base_reason IS NOT NULL THEN base_reason
      WHEN dup_rank > 1 THEN 'duplicate_event'
    END AS reason_1
  FROM deduped
),
per_user_day AS (
  SELECT
    *,
    COUNT(CASE WHEN reason_1 IS NULL THEN 1 END)
      OVER (PARTITION BY user_id, to_date(ts)) AS user_day_events
  FROM with_dups
)
SELECT
  user_id,
  item_id,
  ts,
  ts_raw,
  event_type,
  quantity,
  value,
  _corrupt_record,
  source_file,
  CASE
    WHEN reason_1 IS NOT NULL THEN reason_1
    WHEN user_day_events > $bot_max_events_per_day THEN 'bot_activity'
  END AS reason
FROM per_user_day
