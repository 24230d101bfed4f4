"""Positions within runs of equal keys, by hand."""

from __future__ import annotations

import numpy as np

from longtail.runs import rank_in_group, rank_within


def test_rank_within_sorted_runs() -> None:
    assert rank_within(np.array([1, 1, 1, 4, 7, 7])).tolist() == [0, 1, 2, 0, 0, 1]
    assert rank_within(np.zeros(0, np.int64)).tolist() == []


def test_rank_in_group_counts_the_earlier_entries_of_each_key() -> None:
    assert rank_in_group(np.array([3, 1, 3, 3, 1, 2])).tolist() == [0, 0, 1, 2, 1, 0]
    assert rank_in_group(np.zeros(0, np.int64)).tolist() == []
