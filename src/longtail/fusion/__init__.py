"""Multi-source candidates, fusion features, the ranker's scores and the tail-aware final list.

Everything here is pure numpy/pandas over an `ItemSpace` (per-item arrays, broadcast once) and a
batch of users (their history as arrays), so the same code runs inside Spark's mapInPandas for
the nightly scoring, on the driver for the ranker's training window, and in the benchmark.
Scores are computed for a block of users at a time (block x items), never users x items.

Candidate sources, in the order that names a row's `source` when several propose an item:
als (factor dot product), cooccurrence (items bought together with the user's items), text_ngram
(character n-gram neighbours of the user's items; only on nights whose space carries the n-gram
channel, `longtail.text_ngrams`), content
(text-embedding similarity to the user's profile and to their recent items), category (popular
in the user's categories), tail_explorer (tail items closest to the profile), cold_text (items
with no interactions yet, matched by text), popularity.

One module per job, every public name re-exported here: `space` (the item space and its
assembly from item-sized frames), `history` (users' history arrays and text profiles),
`candidates` (the night's retrieval, the candidate sources and their features), `rerank` (the
fallback blend, tail calibration, the tail-aware final lists and `recommend`). The pandas
item-space build that only the tests use is `tests/unit/fusion_reference.py`.
"""

from __future__ import annotations

from longtail.evaluation import HEAD_SHARE
from longtail.evaluation.split import head_tail
from longtail.fusion.candidates import (
    FEATURES,
    NEIGHBOUR_MARGIN,
    NGRAM_FEATURES,
    SOURCES,
    TAIL_LOOKUP,
    CandidateCounts,
    Retrieval,
    build_retrieval,
    candidates,
    feature_matrix,
    frame_features,
    retrieval_from_meta,
)
from longtail.fusion.history import (
    EXCLUDED,
    HIST_ITEMS,
    HIST_TS,
    HIST_WEIGHTS,
    history_matrix,
    ngram_profiles,
    text_profiles,
    user_frame,
)
from longtail.fusion.rerank import (
    CALIBRATION_PSEUDO,
    IS_LONG_TAIL,
    ListShape,
    blend_score,
    block_lists,
    calibrated_targets,
    choose_spread,
    exposure_penalty,
    final_lists,
    new_item_counts,
    new_item_threshold,
    ordered_tail,
    recommend,
    scored_blocks,
    spread_scores,
    tail_calibration,
    tail_order,
    tail_rerank,
    tail_shares,
    top_new_scores,
)
from longtail.fusion.space import (
    COOCCURRENCE_TOP,
    COOCCURRENCE_USER_CAP,
    FACTOR_MAP_RIDGES,
    FIRST_TS,
    N_RECENT_USERS,
    N_USERS,
    NEIGHBOUR_ID,
    RECENT_DAYS,
    ItemSpace,
    assemble_item_space,
    text_factors,
)

__all__ = [
    "CALIBRATION_PSEUDO",
    "COOCCURRENCE_TOP",
    "COOCCURRENCE_USER_CAP",
    "EXCLUDED",
    "FACTOR_MAP_RIDGES",
    "FEATURES",
    "FIRST_TS",
    "HEAD_SHARE",
    "HIST_ITEMS",
    "HIST_TS",
    "HIST_WEIGHTS",
    "IS_LONG_TAIL",
    "NEIGHBOUR_ID",
    "NEIGHBOUR_MARGIN",
    "NGRAM_FEATURES",
    "N_RECENT_USERS",
    "N_USERS",
    "RECENT_DAYS",
    "SOURCES",
    "TAIL_LOOKUP",
    "CandidateCounts",
    "ItemSpace",
    "ListShape",
    "Retrieval",
    "assemble_item_space",
    "blend_score",
    "block_lists",
    "build_retrieval",
    "calibrated_targets",
    "candidates",
    "choose_spread",
    "exposure_penalty",
    "feature_matrix",
    "final_lists",
    "frame_features",
    "head_tail",
    "history_matrix",
    "new_item_counts",
    "new_item_threshold",
    "ngram_profiles",
    "ordered_tail",
    "recommend",
    "retrieval_from_meta",
    "scored_blocks",
    "spread_scores",
    "tail_calibration",
    "tail_order",
    "tail_rerank",
    "tail_shares",
    "text_factors",
    "text_profiles",
    "top_new_scores",
    "user_frame",
]
