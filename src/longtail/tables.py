"""Every table the pipeline writes, in one place (stdlib only: retention and the registry use it).

Published tables are the output contract: each partition carries a `_manifest.json`, each table
folder a `_latest.json`, each has a versioned schema in `longtail/schemas/`, and retention keeps
them all by default. Intermediate tables are the pipeline's working data: retention keeps the
last `keep_nights` nights of them (30 by default).
"""

from __future__ import annotations

from longtail.warehouse import layout

RECOMMENDATIONS = "recommendations"
SIMILAR_ITEMS = "similar_items"
QUALITY_METRICS = "quality_metrics"
ITEM_AUDIENCES = "item_audiences"
PUBLISHED = (RECOMMENDATIONS, SIMILAR_ITEMS, ITEM_AUDIENCES, QUALITY_METRICS)
# Which stage publishes which: longtail.registry.PUBLISHED_BY.

BRONZE_EVENTS = "bronze_events"
BRONZE_ITEMS = "bronze_items"
BRONZE_USERS = "bronze_users"
BRONZE = (BRONZE_EVENTS, BRONZE_ITEMS, BRONZE_USERS)
QUARANTINE = "quarantine"
CATALOGUE = "catalogue"
SILVER_EVENTS = "silver_events"
INTERACTIONS = "interactions"
SILVER = (QUARANTINE, CATALOGUE, SILVER_EVENTS, INTERACTIONS)
# Clean's classified events (every event read, with its reason): written to the attempt's
# staging once and read by the quarantine, silver_events and interactions; never published.
CLEAN_CLASSIFIED = "clean_classified"
ITEM_EMBEDDINGS = "item_embeddings"
# The night's item-sized reductions of the interactions (stages/item_space.py).
ITEM_STATS = "item_stats"
ITEM_COOCCURRENCE = "item_cooccurrence"
ALS_USER_FACTORS = "als_user_factors"
ALS_ITEM_FACTORS = "als_item_factors"
RANKER = "ranker"
ALS_FACTORS = (ALS_USER_FACTORS, ALS_ITEM_FACTORS)
# What a night's item space is assembled from (stages/fusion_inputs.space_at).
ITEM_SPACE_INPUTS = (CATALOGUE, ITEM_STATS, ITEM_COOCCURRENCE, ITEM_EMBEDDINGS, ALS_ITEM_FACTORS)
INTERMEDIATE = (
    *BRONZE,
    *SILVER,
    ITEM_EMBEDDINGS,
    ITEM_STATS,
    ITEM_COOCCURRENCE,
    ALS_USER_FACTORS,
    ALS_ITEM_FACTORS,
    RANKER,
)

# Key of the score stage's run record naming the staged recommendations attempt that publish
# audits and swaps in.
STAGED_ATTEMPT = "staged_attempt"

# Text embeddings by (model, text) hash, one folder per model, partitioned by the night that
# first embedded each text; compacted by retention, never expired (see stages/content.py).
EMBEDDING_CACHE = "_cache/embeddings"
# Folders beside the tables that hold a run's leftovers when it died: retention expires them.
LEFTOVER_ROOTS = (layout.STAGING, layout.TRASH)
