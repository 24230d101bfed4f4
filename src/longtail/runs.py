"""Positions within runs of equal keys: the numpy form of `row_number() over (partition by key)`
that the co-occurrence products, the per-item packing and the business-rule caps share."""

from __future__ import annotations

import numpy as np


def rank_within(keys: np.ndarray) -> np.ndarray:
    """Each entry's position within its run of equal keys (keys sorted): 0, 1, ... per run."""
    if not len(keys):
        return np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return np.arange(len(keys)) - np.repeat(starts, np.diff(np.r_[starts, len(keys)]))


def rank_in_group(keys: np.ndarray) -> np.ndarray:
    """Each entry's position among the earlier entries with its key (keys in any order)."""
    by_key = np.argsort(keys, kind="stable")  # each key's entries, in their original order
    rank = np.empty(len(keys), np.int64)
    rank[by_key] = rank_within(keys[by_key])
    return rank
