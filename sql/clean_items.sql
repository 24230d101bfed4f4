-- Catalogue for the run date from bronze_items.
-- One row per item_id: the first by (source_file, title, ...) wins, later duplicates are quarantined.
-- Items first seen after the run date are not yet listed: they are left for later runs (deferred).
-- Inputs: {bronze_items} (a DataFrame, bound per call).
-- Parameters: $run_date (YYYY-MM-DD), $max_title_chars.
WITH listed AS (
  SELECT *
  FROM {bronze_items}
  WHERE first_seen IS NULL OR first_seen <= DATE '$run_date'
),
flagged AS (
  SELECT
    *,
    CASE
      WHEN parse_error IS NOT NULL THEN parse_error
      WHEN item_id IS NULL THEN 'missing_item_id'
      WHEN non_product THEN 'non_product'
    END AS base_reason
  FROM listed
),
ranked AS (
  SELECT
    *,
    ROW_NUMBER() OVER (
      PARTITION BY base_reason IS NULL, item_id
      ORDER BY source_file, title, description, category, brand, price, first_seen, available, stock
    ) AS dup_rank
  FROM flagged
)
SELECT
  item_id,
  substring(title, 1, $max_title_chars) AS title,
  description,
  category,
  brand,
  price,
  first_seen,
  non_product,
  available,
  stock,
  parse_error,
  _corrupt_record,
  source_file,
  CASE
    WHEN base_reason IS NOT NULL THEN base_reason
    WHEN dup_rank > 1 THEN 'duplicate_item'
  END AS reason
FROM ranked
