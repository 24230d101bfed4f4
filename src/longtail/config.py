"""Typed, frozen configuration: one object per stage, validated at start and recorded with the run.

Every stage is a pure function of (input data, run date, config); the config is therefore part of
the run's identity and is hashed into the model version.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any, Self, get_type_hints

from longtail.errors import PermanentError
from longtail.evaluation import HEAD_SHARE

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class ConfigError(PermanentError, ValueError):
    """A configuration value is invalid; raised before any work starts."""


def normalise_location(path: str) -> str:
    """Absolute local paths (so Spark and Airflow agree), URIs (hdfs://, s3a://) untouched."""
    if not path:
        raise ConfigError("empty path")
    if _URI.match(path):
        return path.rstrip("/")
    return os.path.abspath(path)


def parse_ds(value: str | date) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"run date must be YYYY-MM-DD, got {value!r}") from exc


@dataclass(frozen=True)
class StageConfig:
    """Fields shared by every stage: which night, which warehouse."""

    ds: date
    warehouse: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "ds", parse_ds(self.ds))
        object.__setattr__(self, "warehouse", normalise_location(self.warehouse))
        self.validate()

    def validate(self) -> None:
        """Subclasses raise ConfigError on values that make no sense."""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["ds"] = self.ds.isoformat()
        return out

    def fingerprint(self, exclude: tuple[str, ...] = ("warehouse", "landing")) -> str:
        """Hash of what changes results (locations excluded: moving data changes nothing)."""
        payload = {k: v for k, v in self.to_dict().items() if k not in exclude}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_argv(cls, argv: list[str] | None = None) -> Self:
        """Build from `--field value` arguments (or one `--config-json '{...}'`), defaults kept."""
        argv = list(argv or [])
        if argv[:1] == ["--config-json"]:
            if len(argv) != 2:
                raise ConfigError("--config-json takes exactly one JSON object")
            try:
                return cls(**json.loads(argv[1]))
            except TypeError as exc:
                raise ConfigError(str(exc)) from exc
        parser = argparse.ArgumentParser(prog=cls.__name__)
        hints = get_type_hints(cls)
        for f in fields(cls):
            kind = hints[f.name]
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if kind is bool:
                parser.add_argument(
                    f"--{f.name.replace('_', '-')}",
                    type=lambda s: s.lower() in ("1", "true", "yes"),
                    required=required,
                )
            elif kind in (int, float):
                parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, required=required)
            elif kind in (str, date):
                parser.add_argument(f"--{f.name.replace('_', '-')}", type=str, required=required)
            else:  # dict-valued fields are given as JSON
                parser.add_argument(
                    f"--{f.name.replace('_', '-')}", type=json.loads, required=required
                )
        ns = parser.parse_args(argv)
        given = {k: v for k, v in vars(ns).items() if v is not None}
        try:
            return cls(**given)
        except TypeError as exc:
            raise ConfigError(str(exc)) from exc


@dataclass(frozen=True)
class IngestConfig(StageConfig):
    landing: str = "data/landing"

    def __post_init__(self) -> None:
        object.__setattr__(self, "landing", normalise_location(self.landing))
        super().__post_init__()


DEFAULT_EVENT_WEIGHTS = {
    "view": 1.0,
    "add_to_cart": 2.0,
    "purchase": 4.0,
    "rating": 3.0,
    "review": 4.0,
}


@dataclass(frozen=True)
class CleanConfig(StageConfig):
    event_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    # Events older than this are a broken clock (epoch 0), not history.
    min_valid_date: str = "1995-01-01"
    # Events this many days or more after the run date are a broken clock (year 2099), not data of
    # a later run: quarantined as timestamp_in_future. Nearer ones wait for their own run date.
    max_future_days: int = 366
    # More accepted events than this for one user in one day is a bot: that user-day is quarantined.
    bot_max_events_per_day: int = 500
    max_title_chars: int = 500

    def __post_init__(self) -> None:
        # A partial override keeps the defaults for the event types it does not name.
        object.__setattr__(self, "event_weights", {**DEFAULT_EVENT_WEIGHTS, **self.event_weights})
        super().__post_init__()

    def validate(self) -> None:
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


@dataclass(frozen=True)
class AlsConfig(StageConfig):
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 2.0
    iterations: int = 15
    seed: int = 42
    # Users with fewer distinct items than this get the popularity fallback instead of ALS.
    min_user_items: int = 2
    num_threads: int = 0
    # Choose regularization and alpha each night on the newest `validation_share` of the pairs
    # (als_selection): the configured pair is where the search starts and what is kept when
    # fewer than `min_validation_users` users can judge.
    select: bool = True
    regularization_grid: tuple[float, ...] = (0.05, 0.5, 5.0, 50.0)
    alpha_factors: tuple[float, ...] = (0.25, 4.0)
    validation_share: float = 0.1
    validation_users: int = 2000
    min_validation_users: int = 50

    def validate(self) -> None:
        for name in ("regularization_grid", "alpha_factors"):
            values = getattr(self, name)
            if (
                isinstance(values, str | bytes)
                or not isinstance(values, Sequence)
                or not values
                or not all(
                    isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in values
                )
            ):
                raise ConfigError(f"{name} must be a non-empty list of positive numbers")
            object.__setattr__(self, name, tuple(float(v) for v in values))
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


@dataclass(frozen=True)
class ItemSpaceConfig(StageConfig):
    """The night's item-sized reductions of the interactions, read by score and similar_items
    (and applied by train_ranker to its own window, so training sees the same definitions)."""

    # An item's recent popularity counts distinct users active on it over this many days.
    recent_days: int = 28
    # Co-occurrence neighbours kept per item, and the most recent items of each user counted
    # (so one heavy user cannot blow up the item x item product).
    cooccurrence_top: int = 50
    cooccurrence_user_cap: int = 200

    def validate(self) -> None:
        if self.recent_days < 1:
            raise ConfigError("recent_days must be >= 1")
        if not 1 <= self.cooccurrence_top <= 1000 or self.cooccurrence_user_cap < 2:
            raise ConfigError("cooccurrence_top must be in 1..1000, cooccurrence_user_cap >= 2")


@dataclass(frozen=True)
class ScoreConfig(StageConfig):
    top_n: int = 20
    # Popularity counts distinct users over this many days before the run date.
    popularity_days: int = 28
    # Minimum share of long-tail items at every prefix of a list (0 = pure ranker order).
    tail_target: float = 0.3
    # Minimum share of new items (listed, never sold) at every prefix of a list, taken from the
    # shopper's own candidates (text matches): the only way a new product earns its first sale.
    new_item_share: float = 0.1
    # Each shopper's own tail target: their history's tail share (shrunk to the night's mean),
    # shifted so that the mean over shoppers is tail_target (calibration, Steck 2018).
    calibrate_tail: bool = True
    # Head = the fewest most-interacted items holding this share of interactions; the rest is tail.
    head_share: float = HEAD_SHARE
    # "fusion" (candidates + ranker + tail-aware re-ranking) or "als" (ALS top-N only).
    strategy: str = "fusion"

    def validate(self) -> None:
        if not 1 <= self.top_n <= 1000:
            raise ConfigError("top_n must be in 1..1000")
        if self.popularity_days < 1:
            raise ConfigError("popularity_days must be >= 1")
        if not 0 <= self.tail_target <= 1 or not 0 < self.head_share < 1:
            raise ConfigError("tail_target must be in [0, 1] and head_share in (0, 1)")
        if not 0 <= self.new_item_share <= 0.5:
            raise ConfigError("new_item_share must be in [0, 0.5]")
        if self.strategy not in ("fusion", "als"):
            raise ConfigError("strategy must be 'fusion' or 'als'")


@dataclass(frozen=True)
class PublishConfig(StageConfig):
    top_n: int = 20

    def validate(self) -> None:
        if not 1 <= self.top_n <= 1000:
            raise ConfigError("top_n must be in 1..1000")


@dataclass(frozen=True)
class QualityConfig(StageConfig):
    """Score the previous night's published list against the events that arrived since."""

    # Look back at most this many days for the previous published list.
    max_lookback_days: int = 7

    def validate(self) -> None:
        if self.max_lookback_days < 1:
            raise ConfigError("max_lookback_days must be >= 1")


@dataclass(frozen=True)
class ContentConfig(StageConfig):
    """Item text embeddings; `model` is the packaged default or a local model folder."""

    model: str = "all-MiniLM-L6-v2"
    device: str = "auto"
    # Texts of equal token length are encoded together, at most batch_size at a time: no batch
    # is padded, so a vector is byte-identical whatever else is embedded with it (re-runs,
    # backfills and the cache's history give the same tables), and batches are several times
    # faster than one text at a time.
    batch_size: int = 32
    max_text_chars: int = 1000
    # Above this share of unknown tokens (under the encoder's tokenizer, over every catalogue
    # text) the encoder cannot read the shop's text: the night warns (log, run record, data
    # docs), and `ngram_channel=auto` switches the character n-gram channel on.
    unknown_token_warn_share: float = 0.05
    # auto | on | off: the language-independent character n-gram text channel (text_ngrams.py),
    # a candidate source and ranker features beside the dense vectors.
    ngram_channel: str = "auto"

    def validate(self) -> None:
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


@dataclass(frozen=True)
class RankerConfig(StageConfig):
    """Fusion ranker: temporal label window, candidate counts (scoring reuses them), LightGBM."""

    label_window_days: int = 7
    max_label_window_days: int = 365
    min_label_pairs: int = 2000
    max_train_users: int = 4000
    k_als: int = 100
    k_content: int = 50
    k_cooccurrence: int = 50
    k_category: int = 20
    k_tail_explorer: int = 30
    k_cold_text: int = 20
    k_popularity: int = 20
    # Catalogues up to this size are searched exactly, larger ones with an HNSW graph index.
    retrieval_exact_max_items: int = 10_000
    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 50
    # Share of items whose events before the window start are hidden while building training
    # candidates and features (DropoutNet, Volkovs et al. 2017): they look brand-new there, so
    # the ranker sees cold items that later sell and learns what a cold success looks like.
    item_dropout: float = 0.1
    # Fewer labelled users than this in the widest temporal window (rating data, where users
    # rarely come back) and labels become each user's own last `last_items_share` of distinct
    # items instead (users with at least 3), features from everything else before the end.
    min_label_users: int = 100
    last_items_share: float = 0.2
    seed: int = 42

    def validate(self) -> None:
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
        if self.retrieval_exact_max_items < 0:
            raise ConfigError("retrieval_exact_max_items must be >= 0")
        if self.n_estimators < 1 or not 0 < self.learning_rate <= 1:
            raise ConfigError("n_estimators >= 1 and 0 < learning_rate <= 1 are required")

    def candidate_counts(self) -> dict[str, int]:
        return {
            "als": self.k_als,
            "content": self.k_content,
            "cooccurrence": self.k_cooccurrence,
            "category": self.k_category,
            "tail_explorer": self.k_tail_explorer,
            "cold_text": self.k_cold_text,
            "popularity": self.k_popularity,
        }


@dataclass(frozen=True)
class SimilarItemsConfig(StageConfig):
    """ "You may also like" lists for product pages, cold items included."""

    top_k: int = 20
    cooccurrence_weight: float = 1.0

    def validate(self) -> None:
        if not 1 <= self.top_k <= 200:
            raise ConfigError("top_k must be in 1..200")
        if self.cooccurrence_weight < 0:
            raise ConfigError("cooccurrence_weight must be >= 0")


@dataclass(frozen=True)
class ItemAudiencesConfig(StageConfig):
    """Audiences for new products: each item's best shoppers, for launches and campaigns."""

    # Items listed at most this many days before the night's end (or never sold) are new.
    new_item_days: int = 14
    audience_size: int = 500
    # Also every long-tail item (the fewest items holding 80% of interactions are the head).
    include_long_tail: bool = False

    def validate(self) -> None:
        if not 0 <= self.new_item_days <= 3660:
            raise ConfigError("new_item_days must be in 0..3660")
        if not 1 <= self.audience_size <= 100_000:
            raise ConfigError("audience_size must be in 1..100000")


@dataclass(frozen=True)
class RetentionConfig(StageConfig):
    """How many nights to keep, counted back from the run date (the newest partition always stays).

    keep_nights: intermediate tables (bronze, silver, interactions, embeddings, factors, ranker,
    quarantine) and the leftovers of runs that died (`_staging`, `_trash`). keep_published_nights:
    recommendations, similar_items, quality_metrics; None keeps every night. The embedding cache is
    compacted (each text hash stored once), never expired: unchanged items are never re-embedded.
    """

    keep_nights: int = 30
    keep_published_nights: int | None = None
    compact_embedding_cache: bool = True

    def validate(self) -> None:
        if self.keep_nights < 1:
            raise ConfigError("keep_nights must be >= 1")
        if self.keep_published_nights is not None and self.keep_published_nights < 1:
            raise ConfigError("keep_published_nights must be >= 1, or null to keep every night")
