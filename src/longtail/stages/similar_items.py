"""Similar items for product pages: text-embedding neighbours blended with co-occurrence.

Every catalogue item gets top_k neighbours, including items nobody has bought yet (their text
finds them neighbours). On nights the character n-gram channel is on (`longtail.text_ngrams`: the
encoder cannot read the catalogue's text), the text similarity is the n-gram cosine instead of
the dense one. Computed inside Spark in blocks of items with the item arrays broadcast;
gated and published like the main table at `similar_items/ds=<ds>/`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from longtail import columns as C
from longtail import gates, tables
from longtail.config import SimilarItemsConfig
from longtail.fusion import ItemSpace
from longtail.retrieval import VectorIndex
from longtail.stages import fusion_inputs as inputs
from longtail.stages.common import stage_main
from longtail.warehouse.publish import MANIFEST_KEY, write_audit_publish

TABLE = tables.SIMILAR_ITEMS
SIMILAR_ITEM_ID = C.SIMILAR_ITEM_ID
SCHEMA = StructType(
    [
        StructField(C.ITEM_ID, StringType(), False),
        StructField(C.RANK, IntegerType(), False),
        StructField(SIMILAR_ITEM_ID, StringType(), False),
        StructField(C.SCORE, DoubleType(), False),
        StructField(C.SOURCE, StringType(), False),
    ]
)


def similar_block(
    rows: np.ndarray, space: ItemSpace, k: int, cooc_weight: float, text: VectorIndex
) -> pd.DataFrame:
    """Top-k neighbours (text similarity + weight x co-occurrence) for the item positions in rows.

    Candidates per item: its k + 1 + (co-occurrence neighbours) nearest texts from the index,
    its co-occurrence neighbours, and the first k + 1 items without text (score 0, the order an
    exhaustive scan breaks ties in). With an exact index that holds the exact top-k: an item
    outside its co-occurrence row scores its text similarity alone. Scores are computed for the
    candidates only. With the n-gram channel on, `ngram_block` gives them instead.
    """
    if space.ngram_vectors is not None and space.ngram_neighbours is not None:
        return ngram_block(rows, space, k, cooc_weight)
    n_items = len(space.item_ids)
    shown = space.allowed  # unavailable or excluded items are never anyone's similar item
    cooc = space.cooc[rows]
    wide = k + 1 + int(np.diff(cooc.indptr).max(initial=0))
    near, _ = text.search(space.embeddings[rows], wide, [np.zeros(0, np.int64)] * len(rows))
    pool = np.arange(n_items) if shown is None else np.flatnonzero(shown)
    no_text = np.setdiff1d(pool, text.rows)[: k + 1]
    block = np.arange(len(rows))
    cooc_r, cooc_c = _flat_csr(cooc)
    r_all = np.concatenate(
        [np.repeat(block, (near >= 0).sum(axis=1)), cooc_r, np.repeat(block, len(no_text))]
    )
    c_all = np.concatenate([near[near >= 0], cooc_c, np.tile(no_text, len(rows))])
    r, c = _pairs(r_all, c_all, rows, n_items, shown)
    content_v = np.einsum("ij,ij->i", space.embeddings[rows[r]], space.embeddings[c])
    return _ranked(rows, r, c, content_v, cooc, space, k, cooc_weight)


def ngram_block(rows: np.ndarray, space: ItemSpace, k: int, cooc_weight: float) -> pd.DataFrame:
    """similar_block with the n-gram cosine as the text similarity.

    Candidates per item: its n-gram neighbours (text_ngrams.NEIGHBOURS of them), its
    co-occurrence neighbours and the first k + 1 items that may be shown (the ties an exhaustive
    scan would take): the exact top-k for k up to the neighbours kept, since an item outside both
    rows scores at most its n-gram similarity, no more than the last neighbour's. Unavailable or
    excluded items are never anyone's similar item, as in `similar_block`.
    """
    x, nb = space.ngram_vectors, space.ngram_neighbours
    assert x is not None and nb is not None
    n_items = len(space.item_ids)
    shown = space.allowed
    cooc = space.cooc[rows]
    fill = (np.arange(n_items) if shown is None else np.flatnonzero(shown))[: k + 1]
    nb_r, nb_c = _flat_csr(nb[rows])
    cooc_r, cooc_c = _flat_csr(cooc)
    r_all = np.concatenate([nb_r, cooc_r, np.repeat(np.arange(len(rows)), len(fill))])
    c_all = np.concatenate([nb_c, cooc_c, np.tile(fill, len(rows))])
    r, c = _pairs(r_all, c_all, rows, n_items, shown)
    text_v = np.asarray(x[rows[r]].multiply(x[c]).sum(axis=1), dtype=np.float32).ravel()
    return _ranked(rows, r, c, text_v, cooc, space, k, cooc_weight)


def _ranked(
    rows: np.ndarray,
    r: np.ndarray,
    c: np.ndarray,
    content_v: np.ndarray,
    cooc: Any,
    space: ItemSpace,
    k: int,
    cooc_weight: float,
) -> pd.DataFrame:
    """The top-k rows of each item's scored candidates (r: block row, c: item position)."""
    cooc_v = np.asarray(cooc[r, c], dtype=np.float32).ravel()
    score_v = content_v + cooc_weight * cooc_v
    order = np.lexsort((c, -score_v, r))
    r, c, content_v, cooc_v, score_v = (x[order] for x in (r, c, content_v, cooc_v, score_v))
    take = np.arange(len(r)) - np.searchsorted(r, r, side="left") < k
    r, c, content_v, cooc_v, score_v = (x[take] for x in (r, c, content_v, cooc_v, score_v))
    has_cooc = cooc_v > 0
    content_strong = content_v >= cooc_weight * cooc_v
    source = np.where(has_cooc & content_strong, "content+cooccurrence", "cooccurrence")
    source = np.where(has_cooc, source, "content")
    return pd.DataFrame(
        {
            C.ITEM_ID: space.item_ids[rows[r]],
            C.RANK: (np.arange(len(r)) - np.searchsorted(r, r, side="left") + 1).astype(np.int32),
            SIMILAR_ITEM_ID: space.item_ids[c],
            C.SCORE: score_v.astype(np.float64),
            C.SOURCE: source,
        }
    )


def _pairs(
    r_all: np.ndarray, c_all: np.ndarray, rows: np.ndarray, n_items: int, shown: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (block row, item) candidate pairs, without an item itself and, where some
    items may not be shown (`shown`), without those."""
    keys = np.unique(r_all * n_items + c_all)
    r, c = keys // n_items, keys % n_items
    keep = c != rows[r]  # never an item itself
    if shown is not None:
        keep &= shown[c]
    return r[keep], c[keep]


def _flat_csr(m: Any) -> tuple[np.ndarray, np.ndarray]:
    return np.repeat(np.arange(m.shape[0]), np.diff(m.indptr)), m.indices.astype(np.int64)


def run(spark: SparkSession, cfg: SimilarItemsConfig) -> dict[str, Any]:
    wh, ds = cfg.warehouse, cfg.ds
    rules = inputs.night_rules(spark, wh, ds)
    space = inputs.space_at(spark, wh, ds, rules=rules)
    n_items = len(space.item_ids)
    n_shown = n_items if space.allowed is None else int(space.allowed.sum())
    hidden = [] if space.allowed is None else space.item_ids[~space.allowed].tolist()
    k = min(cfg.top_k, n_shown - 1)
    has_text = np.abs(space.embeddings).sum(axis=1) > 0
    # The text index holds only items that may be shown: an item's k nearest are all usable.
    has_text = np.flatnonzero(has_text if space.allowed is None else has_text & space.allowed)
    bc = spark.sparkContext.broadcast((space, VectorIndex.build(space.embeddings, has_text)))

    def run_blocks(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        sp, text = bc.value
        for batch in batches:
            rows = batch["pos"].to_numpy(dtype=np.int64)
            for start in range(0, len(rows), 512):
                block = rows[start : start + 512]
                yield similar_block(block, sp, k, cfg.cooccurrence_weight, text)

    positions = spark.createDataFrame(pd.DataFrame({"pos": np.arange(n_items, dtype=np.int64)}))
    parts = max(1, spark.sparkContext.defaultParallelism)
    sims = positions.repartition(parts).mapInPandas(run_blocks, SCHEMA)
    published = write_audit_publish(
        sims,
        wh,
        TABLE,
        ds,
        lambda df: gates.gate_similar(df, n_items, k, hidden),
        manifest={
            "top_n": k,
            "model_version": inputs.text_model_version(spark, "similar", cfg, rules),
        },
    )
    return {
        "model_version": published[MANIFEST_KEY]["model_version"],
        "counts": {"items": n_items, "rows": n_items * k, "cold_items": int(space.is_cold.sum())},
        "manifests": {TABLE: published[MANIFEST_KEY]},
    }


def main(argv: list[str] | None = None) -> int:
    return stage_main("similar_items", SimilarItemsConfig, run, argv)
