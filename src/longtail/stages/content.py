"""Content features: catalogue text -> embeddings, computed inside Spark, cached by text hash.

Each night also measures, with the encoder's tokenizer only, the share of unknown tokens over every
catalogue text (not just the new ones): above `unknown_token_warn_share` the encoder cannot read
the shop's text, the night warns (log, run record `warnings`, data docs), and with
`ngram_channel=auto` the character n-gram channel (`longtail.text_ngrams`) is switched on for the
night; the decision is recorded under `ngram_channel`, where training and scoring read it.

The cache lives at `<warehouse>/_cache/embeddings/model=<model>/ds=<night>/` (text_hash,
embedding; `model=<model>_bfloat16` for `precision: bfloat16`, whose vectors differ in their last
bits): each night embeds only texts never seen before, so an unchanged item is never
embedded twice across nights. A re-run of a night recomputes exactly that night's additions.
Retention compacts the cache (each text hash kept once, in the night that first embedded it), which
changes none of this: the vector used is always the earliest night's.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from longtail import columns as C
from longtail import gates, tables
from longtail.config import ContentConfig
from longtail.content import (
    balanced_parts,
    count_unknown_tokens,
    embed_batches,
    encoder_key,
    item_text,
    text_hash,
    token_counts,
)
from longtail.stages.common import stage_main
from longtail.text_ngrams import decide
from longtail.warehouse.fs import Fs
from longtail.warehouse.layout import CACHE_KEY
from longtail.warehouse.leases import read_lease
from longtail.warehouse.publish import read_table, write_audit_publish

log = logging.getLogger("longtail")

TABLE = tables.ITEM_EMBEDDINGS
EMBEDDING = C.EMBEDDING
TEXT_HASH = C.TEXT_HASH
_TEXTS = StructType([StructField(TEXT_HASH, StringType()), StructField("text", StringType())])
_SCHEMA = StructType(
    [StructField(TEXT_HASH, StringType()), StructField(EMBEDDING, ArrayType(FloatType()))]
)


def cache_table(model: str) -> str:
    return f"{tables.EMBEDDING_CACHE}/model=" + re.sub(r"[^A-Za-z0-9._-]+", "_", model)


def catalogue_texts(catalogue: pd.DataFrame, cfg: ContentConfig) -> pd.DataFrame:
    """item_id, text, text_hash for every catalogue item (pure; pandas)."""
    texts = [
        item_text(t, c, b, d, cfg.max_text_chars)
        for t, c, b, d in zip(
            catalogue[C.TITLE],
            catalogue[C.CATEGORY],
            catalogue[C.BRAND],
            catalogue[C.DESCRIPTION],
            strict=True,
        )
    ]
    out = pd.DataFrame({C.ITEM_ID: catalogue[C.ITEM_ID].astype(str), "text": texts})
    key = encoder_key(cfg.model, cfg.precision)
    out[TEXT_HASH] = [text_hash(t, key) for t in texts]
    return out


def encoding_input(
    spark: SparkSession, todo: pd.DataFrame, part: np.ndarray, parts: int
) -> DataFrame:
    """(text_hash, text) in exactly `parts` Spark partitions, row i in partition part[i].

    Texts of one token length share a partition (`balanced_parts`): each length's last batch is
    padded once per partition it appears in. Which partition a text is in never changes its
    vector (every forward pass of a length has one shape), so the split is free to follow the
    work. A hash or range repartition would not put part p in partition p (two parts can share
    one while the other core waits), hence the pair RDD partitioned by the part itself.
    """
    rows = list(zip(part.tolist(), todo[TEXT_HASH].tolist(), todo["text"].tolist(), strict=True))
    rdd = (
        spark.sparkContext.parallelize(rows, parts)
        .keyBy(lambda row: row[0])
        .partitionBy(parts, lambda p: p)
        .map(lambda kv: (kv[1][1], kv[1][2]))
    )
    return spark.createDataFrame(rdd, _TEXTS)


def run(spark: SparkSession, cfg: ContentConfig) -> dict[str, Any]:
    # Retention compacts the cache: never while a night reads or adds to it.
    with read_lease(spark, cfg.warehouse, CACHE_KEY):
        return _run(spark, cfg)


def _run(spark: SparkSession, cfg: ContentConfig) -> dict[str, Any]:
    wh, ds = cfg.warehouse, cfg.ds
    catalogue = read_table(spark, wh, tables.CATALOGUE, ds).orderBy(C.ITEM_ID).toPandas()
    texts = catalogue_texts(catalogue, cfg)
    cache_name = cache_table(encoder_key(cfg.model, cfg.precision))
    cache_root = f"{wh}/{cache_name}"
    fs = Fs(spark, cache_root)
    if fs.exists(cache_root) and fs.list_files(cache_root):
        cache = spark.read.parquet(cache_root).where(F.col(C.DS) != F.lit(ds))
        cached = {r[0] for r in cache.select(TEXT_HASH).distinct().collect()}
    else:
        cache, cached = None, set()
    todo = (
        texts[~texts[TEXT_HASH].isin(cached)]
        .drop_duplicates(TEXT_HASH)
        .sort_values(TEXT_HASH)[[TEXT_HASH, "text"]]
    )
    if len(todo):
        parts = max(1, min(spark.sparkContext.defaultParallelism, len(todo) // 256 + 1))
        lengths = token_counts(todo["text"].tolist(), cfg.model)
        new = encoding_input(spark, todo, balanced_parts(lengths, parts, cfg.batch_size), parts)
        new = new.mapInPandas(
            lambda it: embed_batches(it, cfg.model, cfg.device, cfg.batch_size, cfg.precision),
            _SCHEMA,
        )
        write_audit_publish(new, wh, cache_name, ds)
    all_cached = spark.read.parquet(cache_root).select(TEXT_HASH, EMBEDDING, C.DS)
    first = all_cached.groupBy(TEXT_HASH).agg(F.min(C.DS).alias(C.DS))
    vectors = all_cached.join(first, [TEXT_HASH, C.DS]).select(TEXT_HASH, EMBEDDING)
    items = spark.createDataFrame(texts[[C.ITEM_ID, TEXT_HASH]]).join(vectors, TEXT_HASH, "left")
    dim = len(vectors.first()[EMBEDDING])
    write_audit_publish(
        items.select(C.ITEM_ID, TEXT_HASH, EMBEDDING),
        wh,
        TABLE,
        ds,
        lambda df: gates.gate_factors(df, C.ITEM_ID, dim, column=EMBEDDING),
    )
    return {
        **text_report(texts["text"].tolist(), cfg),
        "model": cfg.model,
        "device": cfg.device,  # `auto`: resolved by each task where it encodes
        "precision": cfg.precision,
        "batch_size": cfg.batch_size,
        "dim": dim,
        "counts": {
            "items": len(texts),
            "embedded_now": len(todo),
            "from_cache": int(texts[TEXT_HASH].isin(cached).sum()),
        },
    }


def text_report(texts: list[str], cfg: ContentConfig) -> dict[str, Any]:
    """Unknown-token share of the night's texts, the n-gram channel decision and any warning:
    the run record keys `unknown_tokens`, `ngram_channel` and `warnings`."""
    counts = count_unknown_tokens(texts, cfg.model)
    share = counts.unknown_share
    on, why = decide(cfg.ngram_channel, share, cfg.unknown_token_warn_share)
    warnings = []
    if share > cfg.unknown_token_warn_share:
        warnings.append(
            f"{share:.1%} of catalogue text tokens are unknown to encoder {cfg.model} "
            f"(warn above {cfg.unknown_token_warn_share:.1%}; {counts.texts_with_unknown} of "
            f"{counts.texts} texts): its text vectors carry little meaning for this shop; "
            f"n-gram channel {'on' if on else 'off'} ({why})"
        )
        log.warning("content ds=%s: %s", cfg.ds, warnings[-1])
    return {
        "unknown_tokens": {
            "tokens": counts.tokens,
            "unknown": counts.unknown,
            "share": share,
            "texts": counts.texts,
            "texts_with_unknown": counts.texts_with_unknown,
            "warn_share": cfg.unknown_token_warn_share,
        },
        "ngram_channel": {"mode": cfg.ngram_channel, "on": on, "reason": why},
        "warnings": warnings,
    }


def main(argv: list[str] | None = None) -> int:
    return stage_main("content", ContentConfig, run, argv)
