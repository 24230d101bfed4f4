"""Typed, frozen configuration: one pydantic model per stage, validated at start and recorded
with the run.

Every stage is a pure function of (input data, run date, config); the config is therefore part of
the run's identity and is hashed into the model version (`fingerprint`). Types are strict: an
integer field refuses 64.5, "64" and true; a number field takes integers and decimals (and keeps
what it was given, so a recorded config hashes as it did); an unknown field is an error. Every
mistake is a ConfigError, raised before any work starts. `json_schema()` is each stage's
overridable fields as JSON Schema (the DAG's `overrides` Param validates the trigger form with it).

The shared machinery (`StageConfig`, `Number`, `ConfigError`, `normalise_location`, `parse_ds`)
is `longtail.config_base`, re-exported here.

Light at import (the stdlib and pydantic): the DAG file and resolve_run import it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, StrictBool, StrictInt, StrictStr, field_validator

from longtail.config_base import ConfigError as ConfigError
from longtail.config_base import Number as Number
from longtail.config_base import StageConfig as StageConfig
from longtail.config_base import normalise_location as normalise_location
from longtail.config_base import parse_ds as parse_ds
from longtail.evaluation import HEAD_SHARE


class IngestConfig(StageConfig):
    landing: StrictStr = "data/landing"

    @field_validator("landing")
    @classmethod
    def _landing(cls, value: str) -> str:
        return normalise_location(value)


DEFAULT_EVENT_WEIGHTS = {
    "view": 1.0,
    "add_to_cart": 2.0,
    "purchase": 4.0,
    "rating": 3.0,
    "review": 4.0,
}


class CleanConfig(StageConfig):
    event_weights: dict[str, Number] = Field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    # Events older than this are a broken clock (epoch 0), not history.
    min_valid_date: StrictStr = "1995-01-01"
    # Events this many days or more after the run date are a broken clock (year 2099), not data of
    # a later run: quarantined as timestamp_in_future. Nearer ones wait for their own run date.
    max_future_days: StrictInt = 366
    # More accepted events than this for one user in one day is a bot: that user-day is quarantined.
    bot_max_events_per_day: StrictInt = 500
    max_title_chars: StrictInt = 500

    @field_validator("event_weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        # A partial override keeps the defaults for the event types it does not name.
        return {**DEFAULT_EVENT_WEIGHTS, **value}

    def check(self) -> None:
        unknown = set(self.event_weights) - set(DEFAULT_EVENT_WEIGHTS)
        if unknown:
            raise ConfigError(f"event_weights has unknown event types: {sorted(unknown)}")
        if any(w <= 0 for w in self.event_weights.values()):
            raise ConfigError("event weights must be > 0")
        parse_ds(self.min_valid_date)
        if self.max_future_days < 1:
            raise ConfigError("max_future_days must be >= 1")
        if self.bot_max_events_per_day < 1:
            raise ConfigError("bot_max_events_per_day must be >= 1")


class AlsConfig(StageConfig):
    # Added after the fingerprints were pinned, with the value the code had hard-coded.
    NEW_FIELDS: ClassVar[frozenset[str]] = frozenset({"select_every_days"})

    factors: StrictInt = 64
    regularization: Number = 0.05
    alpha: Number = 2.0
    iterations: StrictInt = 15
    seed: StrictInt = 42
    # Users with fewer distinct items than this get the popularity fallback instead of ALS.
    min_user_items: StrictInt = 2
    num_threads: StrictInt = 0
    # Choose regularization and alpha each night on the newest `validation_share` of the pairs
    # (als_selection): the configured pair is where the search starts and what is kept when
    # fewer than `min_validation_users` users can judge.
    select: StrictBool = True
    regularization_grid: tuple[Number, ...] = (0.05, 0.5, 5.0, 50.0)
    alpha_factors: tuple[Number, ...] = (0.25, 4.0)
    validation_share: Number = 0.1
    validation_users: StrictInt = 2000
    min_validation_users: StrictInt = 50
    # Choose the settings every this many days (cadence.py): 7 = as of each week's Monday,
    # copied from an earlier night of the week that recorded the same inputs key (cheaper
    # nights and backfills; measured to cost accuracy, README "Weekly learned steps").
    # 1 = chosen every night on everything up to the run date.
    select_every_days: StrictInt = 1

    @field_validator("regularization_grid", "alpha_factors")
    @classmethod
    def _grid(cls, values: tuple[float, ...], info: Any) -> tuple[float, ...]:
        if not values or not all(v > 0 for v in values):
            raise ConfigError(f"{info.field_name} must be a non-empty list of positive numbers")
        return tuple(float(v) for v in values)

    def check(self) -> None:
        if not 0 < self.validation_share < 1:
            raise ConfigError("validation_share must be in (0, 1)")
        if self.validation_users < 1 or self.min_validation_users < 1:
            raise ConfigError("validation_users and min_validation_users must be >= 1")
        if not 1 <= self.factors <= 1024:
            raise ConfigError("factors must be in 1..1024")
        if self.regularization < 0 or self.alpha <= 0 or self.iterations < 1:
            raise ConfigError("regularization >= 0, alpha > 0 and iterations >= 1 are required")
        if self.min_user_items < 1:
            raise ConfigError("min_user_items must be >= 1")
        if not 1 <= self.select_every_days <= 366:
            raise ConfigError("select_every_days must be in 1..366")


class ItemSpaceConfig(StageConfig):
    """The night's item-sized reductions of the interactions, read by score and similar_items
    (and applied by train_ranker to its own window, so training sees the same definitions)."""

    # An item's recent popularity counts distinct users active on it over this many days.
    recent_days: StrictInt = 28
    # Co-occurrence neighbours kept per item, and the most recent items of each user counted
    # (so one heavy user cannot blow up the item x item product).
    cooccurrence_top: StrictInt = 50
    cooccurrence_user_cap: StrictInt = 200

    def check(self) -> None:
        if self.recent_days < 1:
            raise ConfigError("recent_days must be >= 1")
        if not 1 <= self.cooccurrence_top <= 1000 or self.cooccurrence_user_cap < 2:
            raise ConfigError("cooccurrence_top must be in 1..1000, cooccurrence_user_cap >= 2")


class ScoreConfig(StageConfig):
    # Added after the fingerprints were pinned.
    NEW_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "spread",
            "spread_sample_users",
            "new_item_slots",
            "new_item_max_share",
            "k_cold_text",
            "tail_cooccurrence",
        }
    )
    # fusion.retrieval_from_meta's keyword -> the field that widens that count when scoring
    SCORING_FIELDS: ClassVar[dict[str, str]] = {
        "cold_text": "k_cold_text",
        "als_tail": "k_als_tail",
        "cooccurrence_tail": "k_cooccurrence_tail",
    }

    top_n: StrictInt = 20
    # Popularity counts distinct users over this many days before the run date.
    popularity_days: StrictInt = 28
    # Minimum share of long-tail items in the top k, k = 10, 20, ... and top_n (0 = pure ranker
    # order; fusion.tail_rerank).
    tail_target: Number = 0.3
    # Minimum share of new items (listed, never sold) in the same top k, taken from the
    # shopper's own candidates (text matches): the only way a new product earns its first sale.
    new_item_share: Number = 0.1
    # How the night shares those slots out. "matched": new_item_share is the mean over lists;
    # a shopper gets one slot for each new candidate the ranker scores at or above the night's
    # bar (set on the spread sample so that the mean holds), at most new_item_max_share of the
    # list, so the slots go where a new product matches best. "even": every list gets the share.
    new_item_slots: StrictStr = "matched"
    new_item_max_share: Number = 0.2
    # New-product candidates per shopper (the cold_text source) at scoring; None = as many as
    # the ranker was trained with. Wider than training's 20: the night's bar above decides which
    # of them earn a slot, so more candidates give it more to choose from, while the ranker
    # keeps learning on the share of cold candidates it will mostly see.
    k_cold_text: StrictInt | None = 40
    # The als and cooccurrence sources also look this deep within the long tail when scoring:
    # each shopper's best tail items by ALS score and by co-occurrence with their own items, for
    # the tail positions to choose from (the ranker is trained without them, as with
    # k_cold_text). A source's overall top-k rarely reaches the tail; these find more of the
    # shoppers' tail purchases on every benchmark set (README "How it reaches the long tail",
    # step 2). Rows only they found take warm tail items' positions only, never new items'
    # (fusion.tail_rerank). 0 = off.
    k_als_tail: StrictInt = 30
    k_cooccurrence_tail: StrictInt = 30
    # Each shopper's own tail target: their history's tail share (shrunk to the night's mean),
    # shifted so that the mean over shoppers is tail_target (calibration, Steck 2018).
    calibrate_tail: StrictBool = True
    # Which tail items fill the tail's positions: the ranker's order among the warm tail
    # candidates blended with their co-occurrence with the shopper's items, this weight on its
    # z-score (fusion.tail_order). The ranker, learning mostly from head positives, orders the
    # tail by popularity-like features and gives every shopper the same few. 0 = its order.
    tail_cooccurrence: Number = 0.5
    # Which warm tail items the tail floors place: the same key less this strength times the
    # item's exposure (fusion.exposure_penalty: how many of the spread sample's lists already
    # show it in their top 10). Only the positions a floor fills rotate; a tail item that wins
    # its position on score keeps it. Without it every shopper's floor takes the same few tail
    # items, and the night's lists cover little of the catalogue. 0 = off.
    tail_spread: Number = 2.0
    # Head = the fewest most-interacted items holding this share of interactions; the rest is tail.
    head_share: Number = HEAD_SHARE
    # Exposure penalty strength (fusion.spread_scores): items already in the top 10 of many lists
    # give way to ones the shopper rates alike; new items are exempt. 0 = off; None = the
    # strength train_ranker chose on its validation users (meta.json `spread`). The exposure is
    # counted on the lists of a fixed hash sample of `spread_sample_users` users, scored twice.
    spread: Number | None = 0.1
    spread_sample_users: StrictInt = 5000
    # "fusion" (candidates + ranker + tail-aware re-ranking) or "als" (ALS top-N only).
    strategy: StrictStr = "fusion"

    def check(self) -> None:
        if not 1 <= self.top_n <= 1000:
            raise ConfigError("top_n must be in 1..1000")
        if self.popularity_days < 1:
            raise ConfigError("popularity_days must be >= 1")
        if not 0 <= self.tail_target <= 1 or not 0 < self.head_share < 1:
            raise ConfigError("tail_target must be in [0, 1] and head_share in (0, 1)")
        if not 0 <= self.new_item_share <= 0.5:
            raise ConfigError("new_item_share must be in [0, 0.5]")
        if self.new_item_slots not in ("matched", "even"):
            raise ConfigError("new_item_slots must be 'matched' or 'even'")
        if not self.new_item_share <= self.new_item_max_share <= 1:
            raise ConfigError("new_item_max_share must be in [new_item_share, 1]")
        if not 0 <= self.tail_cooccurrence <= 10 or not 0 <= self.tail_spread <= 10:
            raise ConfigError("tail_cooccurrence and tail_spread must be in [0, 10]")
        if self.k_cold_text is not None and not 0 <= self.k_cold_text <= 1000:
            raise ConfigError("k_cold_text must be in 0..1000 (or unset)")
        if not 0 <= self.k_als_tail <= 1000 or not 0 <= self.k_cooccurrence_tail <= 1000:
            raise ConfigError("k_als_tail and k_cooccurrence_tail must be in 0..1000")
        if self.strategy not in ("fusion", "als"):
            raise ConfigError("strategy must be 'fusion' or 'als'")
        if (self.spread is not None and not 0 <= self.spread <= 5) or self.spread_sample_users < 1:
            raise ConfigError("spread must be in [0, 5] (or unset) and spread_sample_users >= 1")

    def scoring_counts(self) -> dict[str, int | None]:
        """How scoring widens the ranker's candidates (fusion.retrieval_from_meta's keywords)."""
        return {key: getattr(self, name) for key, name in self.SCORING_FIELDS.items()}

    @classmethod
    def default_scoring_counts(cls) -> dict[str, int | None]:
        return {key: cls.default(name) for key, name in cls.SCORING_FIELDS.items()}


class PublishConfig(StageConfig):
    top_n: StrictInt = 20

    def check(self) -> None:
        if not 1 <= self.top_n <= 1000:
            raise ConfigError("top_n must be in 1..1000")


class QualityConfig(StageConfig):
    """Score the previous night's published list against the events that arrived since."""

    # Look back at most this many days for the previous published list.
    max_lookback_days: StrictInt = 7

    def check(self) -> None:
        if self.max_lookback_days < 1:
            raise ConfigError("max_lookback_days must be >= 1")


# The text encoder's arithmetic (ContentConfig.precision, longtail.content).
ENCODER_PRECISIONS = ("float32", "bfloat16")


class ContentConfig(StageConfig):
    """Item text embeddings; `model` is the packaged default or a local model folder."""

    NEW_FIELDS: ClassVar[frozenset[str]] = frozenset({"precision"})

    model: StrictStr = "all-MiniLM-L6-v2"
    device: StrictStr = "auto"
    # Texts of equal token length are encoded together, batch_size at a time: no text is padded
    # and each length's last batch is filled with copies, so a vector is byte-identical whatever
    # else is embedded with it (re-runs, backfills and the cache's history give the same tables).
    # 8, not 32: the copies are the waste (sample: 137k token rows encoded for 89k real ones at
    # 32, 99k at 8), and a batch of 8 or 16 encodes a token no slower than one of 32 on CPU.
    batch_size: StrictInt = 8
    max_text_chars: StrictInt = 1000
    # Above this share of unknown tokens (under the encoder's tokenizer, over every catalogue
    # text) the encoder cannot read the shop's text: the night warns (log, run record, data
    # docs), and `ngram_channel=auto` switches the character n-gram channel on.
    unknown_token_warn_share: Number = 0.05
    # auto | on | off: the language-independent character n-gram text channel (text_ngrams.py),
    # a candidate source and ranker features beside the dense vectors.
    ngram_channel: StrictStr = "auto"
    # float32 | bfloat16: the encoder's arithmetic (ENCODER_PRECISIONS). bfloat16 embeds about
    # twice as fast where the CPU has AMX or AVX512-BF16 (or on a GPU), with vectors within a
    # cosine of 1e-4 of float32's but not the same bytes (own cache); float32 gives the same
    # bytes on every night and is the default.
    precision: StrictStr = "float32"

    def check(self) -> None:
        if self.precision not in ENCODER_PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(ENCODER_PRECISIONS)}")
        if not 0 <= self.unknown_token_warn_share <= 1:
            raise ConfigError("unknown_token_warn_share must be in [0, 1]")
        if self.ngram_channel not in ("auto", "on", "off"):
            raise ConfigError("ngram_channel must be auto, on or off")
        if not self.model:
            raise ConfigError("model must name the packaged encoder or a local folder")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError("device must be auto, cpu, cuda or cuda:N")
        if self.batch_size < 1 or self.max_text_chars < 16:
            raise ConfigError("batch_size >= 1 and max_text_chars >= 16 are required")


class RankerConfig(StageConfig):
    """Fusion ranker: temporal label window, candidate counts (scoring reuses them), LightGBM."""

    # Added after the fingerprints were pinned, each with the value the code had hard-coded.
    NEW_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "k_text_ngram",
            "recent_items",
            "colsample_bytree",
            "num_threads",
            "early_stopping_rounds",
            "valid_share",
            "spread_strengths",
            "retrain_every_days",
        }
    )
    # candidate source (fusion.CandidateCounts) -> the field that holds its count
    CANDIDATE_FIELDS: ClassVar[dict[str, str]] = {
        "als": "k_als",
        "content": "k_content",
        "cooccurrence": "k_cooccurrence",
        "category": "k_category",
        "tail_explorer": "k_tail_explorer",
        "cold_text": "k_cold_text",
        "popularity": "k_popularity",
        "recent_items": "recent_items",
        "text_ngram": "k_text_ngram",
    }
    # LightGBM setting -> the field that holds it (ranker.fit)
    LIGHTGBM_FIELDS: ClassVar[tuple[str, ...]] = (
        "n_estimators",
        "learning_rate",
        "num_leaves",
        "min_child_samples",
        "colsample_bytree",
        "num_threads",
        "early_stopping_rounds",
        "valid_share",
    )

    label_window_days: StrictInt = 7
    max_label_window_days: StrictInt = 365
    min_label_pairs: StrictInt = 2000
    max_train_users: StrictInt = 4000
    k_als: StrictInt = 100
    k_content: StrictInt = 50
    k_cooccurrence: StrictInt = 50
    k_category: StrictInt = 20
    k_tail_explorer: StrictInt = 30
    k_cold_text: StrictInt = 20
    k_popularity: StrictInt = 20
    # Only on nights the item space carries the character n-gram channel (text_ngrams.py).
    k_text_ngram: StrictInt = 50
    # The user's most recent items that the content source's "recent" half searches from.
    recent_items: StrictInt = 5
    # Catalogues up to this size are searched exactly, larger ones with an HNSW graph index.
    retrieval_exact_max_items: StrictInt = 10_000
    n_estimators: StrictInt = 300
    learning_rate: Number = 0.05
    num_leaves: StrictInt = 31
    min_child_samples: StrictInt = 50
    colsample_bytree: Number = 0.9
    # LightGBM's threads (deterministic=True: the same model whatever the count; the model text
    # records it).
    num_threads: StrictInt = 2
    # Training stops when the held-out users' ndcg@10 has not improved for this many rounds;
    # `valid_share` of the training users (a seeded sample) are held out for it.
    early_stopping_rounds: StrictInt = 30
    valid_share: Number = 0.2
    # Share of items whose events before the window start are hidden while building training
    # candidates and features (DropoutNet, Volkovs et al. 2017): they look brand-new there, so
    # the ranker sees cold items that later sell and learns what a cold success looks like.
    item_dropout: Number = 0.1
    # Fewer labelled users than this in the widest temporal window (rating data, where users
    # rarely come back) and labels become each user's own last `last_items_share` of distinct
    # items instead (users with at least 3), features from everything else before the end.
    min_label_users: StrictInt = 100
    last_items_share: Number = 0.2
    # Exposure-penalty strengths tried on the validation users (fusion.choose_spread); the one
    # whose re-ranked lists score best is recorded for the score stage. (0.0,) turns it off.
    spread_strengths: tuple[Number, ...] = (0.0, 0.1, 0.2, 0.3, 0.4)
    seed: StrictInt = 42
    # Train every this many days (cadence.py): 7 = as of each week's Monday, copied from an
    # earlier night of the week whose inputs key matches instead of trained again (cheaper
    # nights and backfills; measured to cost accuracy, README "Weekly learned steps").
    # 1 = trained every night on everything up to the run date.
    retrain_every_days: StrictInt = 1

    def check(self) -> None:
        if not 1 <= self.retrain_every_days <= 366:
            raise ConfigError("retrain_every_days must be in 1..366")
        if not self.spread_strengths or not all(0 <= v <= 5 for v in self.spread_strengths):
            raise ConfigError("spread_strengths must be a non-empty list of numbers in [0, 5]")
        if not 0 <= self.item_dropout < 1:
            raise ConfigError("item_dropout must be in [0, 1)")
        if self.min_label_users < 0 or not 0 < self.last_items_share < 1:
            raise ConfigError("min_label_users >= 0 and 0 < last_items_share < 1 are required")
        if not 1 <= self.label_window_days <= self.max_label_window_days:
            raise ConfigError("need 1 <= label_window_days <= max_label_window_days")
        if self.min_label_pairs < 1 or self.max_train_users < 10:
            raise ConfigError("min_label_pairs >= 1 and max_train_users >= 10 are required")
        ks = [self.k_als, self.k_content, self.k_cooccurrence, self.k_category]
        ks += [self.k_tail_explorer, self.k_cold_text, self.k_popularity]
        if any(k < 0 for k in ks) or sum(ks) < 1:
            raise ConfigError("candidate counts must be >= 0 and not all 0")
        if self.k_text_ngram < 0 or self.recent_items < 0:
            raise ConfigError("k_text_ngram and recent_items must be >= 0")
        if self.retrieval_exact_max_items < 0:
            raise ConfigError("retrieval_exact_max_items must be >= 0")
        if self.n_estimators < 1 or not 0 < self.learning_rate <= 1:
            raise ConfigError("n_estimators >= 1 and 0 < learning_rate <= 1 are required")
        if self.num_leaves < 2 or self.min_child_samples < 1:
            raise ConfigError("num_leaves >= 2 and min_child_samples >= 1 are required")
        if not 0 < self.colsample_bytree <= 1 or not 0 <= self.valid_share < 1:
            raise ConfigError("0 < colsample_bytree <= 1 and 0 <= valid_share < 1 are required")
        if self.num_threads < 0 or self.early_stopping_rounds < 1:
            raise ConfigError("num_threads >= 0 and early_stopping_rounds >= 1 are required")

    def candidate_counts(self) -> dict[str, int]:
        """Candidate source -> count (fusion.CandidateCounts(**...); the ranker's meta.json)."""
        return {source: getattr(self, name) for source, name in self.CANDIDATE_FIELDS.items()}

    @classmethod
    def default_candidate_counts(cls) -> dict[str, int]:
        return {source: cls.default(name) for source, name in cls.CANDIDATE_FIELDS.items()}

    def lightgbm(self) -> dict[str, Any]:
        """The LightGBM settings (ranker.fit)."""
        return {name: getattr(self, name) for name in self.LIGHTGBM_FIELDS}

    @classmethod
    def default_lightgbm(cls) -> dict[str, Any]:
        return {name: cls.default(name) for name in cls.LIGHTGBM_FIELDS}


class SimilarItemsConfig(StageConfig):
    """ "You may also like" lists for product pages, cold items included."""

    top_k: StrictInt = 20
    cooccurrence_weight: Number = 1.0

    def check(self) -> None:
        if not 1 <= self.top_k <= 200:
            raise ConfigError("top_k must be in 1..200")
        if self.cooccurrence_weight < 0:
            raise ConfigError("cooccurrence_weight must be >= 0")


class ItemAudiencesConfig(StageConfig):
    """Audiences for new products: each item's best shoppers, for launches and campaigns."""

    # Items listed at most this many days before the night's end (or never sold) are new.
    new_item_days: StrictInt = 14
    audience_size: StrictInt = 500
    # Also every long-tail item (the fewest items holding 80% of interactions are the head).
    include_long_tail: StrictBool = False

    def check(self) -> None:
        if not 0 <= self.new_item_days <= 3660:
            raise ConfigError("new_item_days must be in 0..3660")
        if not 1 <= self.audience_size <= 100_000:
            raise ConfigError("audience_size must be in 1..100000")


class RetentionConfig(StageConfig):
    """How many nights to keep, counted back from the run date (the newest partition always stays).

    keep_nights: intermediate tables (bronze, silver, interactions, embeddings, factors, ranker,
    quarantine) and the leftovers of runs that died (`_staging`, `_trash`). keep_published_nights:
    recommendations, similar_items, quality_metrics; None keeps every night. The embedding cache is
    compacted (each text hash stored once), never expired: unchanged items are never re-embedded.
    """

    keep_nights: StrictInt = 30
    keep_published_nights: StrictInt | None = None
    compact_embedding_cache: StrictBool = True

    def check(self) -> None:
        if self.keep_nights < 1:
            raise ConfigError("keep_nights must be >= 1")
        if self.keep_published_nights is not None and self.keep_published_nights < 1:
            raise ConfigError("keep_published_nights must be >= 1, or null to keep every night")
