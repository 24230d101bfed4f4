"""One definition of each evaluation idea, used by the quality stage, the ranker and the benchmark.

- ``split``: the head/tail split (its share defaults to ``HEAD_SHARE``) and the new-pair rule.
- ``ranking``: the ranking and long-tail metrics on pandas/numpy inputs (NDCG, recall, APLT,
  tail and cold-item recall, coverage, Gini, novelty, candidate recall, per-user parts).
- ``spark``: the same metrics, with the same names, on Spark DataFrames (the nightly quality
  stage), and the Spark twins of the split and the new-pair rule.

This module imports nothing heavy: the configuration takes ``HEAD_SHARE`` from it.
"""

from __future__ import annotations

# Head = the fewest most-interacted items holding this share of all interactions; the rest
# (never-interacted items included) is the long tail. The one default of the pipeline's
# `score.head_share`, the quality stage and the benchmark.
HEAD_SHARE = 0.8
