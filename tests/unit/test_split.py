"""The temporal split: a global cutoff at midnight, no held-out event in training."""

from __future__ import annotations

import pandas as pd
import pytest

from longtail import columns as C
from longtail.bench.split import compute_cutoff, make_split


def _events(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=[C.USER_ID, C.ITEM_ID, C.TS])
    df[C.TS] = pd.to_datetime(df[C.TS], utc=True)
    return df


EVENTS = _events(
    [
        ("u1", "a", "2024-01-01T10:00:00Z"),
        ("u1", "b", "2024-01-02T10:00:00Z"),
        ("u2", "a", "2024-01-03T10:00:00Z"),
        ("u2", "c", "2024-01-04T10:00:00Z"),
        ("u3", "a", "2024-01-05T10:00:00Z"),
        ("u1", "c", "2024-01-06T09:00:00Z"),
        ("u1", "a", "2024-01-06T11:00:00Z"),  # not new to u1: not a held-out pair
        ("u2", "d", "2024-01-07T10:00:00Z"),
        ("u4", "a", "2024-01-08T10:00:00Z"),  # no training history: not an eval user
        ("u3", "a", "2024-01-09T10:00:00Z"),  # not new to u3
    ]
)


def test_cutoff_is_midnight_of_the_quantile_day() -> None:
    # 10 events, holdout 0.5 -> the event at index 5 (2024-01-06 09:00) -> its midnight
    assert compute_cutoff(EVENTS[C.TS], 0.5) == pd.Timestamp("2024-01-06", tz="UTC")
    # holdout 0.1 -> index 9 (2024-01-09) -> midnight of 2024-01-09
    assert compute_cutoff(EVENTS[C.TS], 0.1) == pd.Timestamp("2024-01-09", tz="UTC")


def test_cutoff_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        compute_cutoff(EVENTS[C.TS], 0.0)
    one_day = _events([("u", "a", "2024-01-01T01:00:00Z"), ("u", "b", "2024-01-01T02:00:00Z")])
    with pytest.raises(ValueError, match="one day"):
        compute_cutoff(one_day[C.TS], 0.5)


def test_split_truth_and_eval_users() -> None:
    split = make_split(EVENTS, pd.Timestamp("2024-01-06", tz="UTC"))
    assert split.truth == {"u1": {"c"}, "u2": {"d"}}
    assert split.eval_users == ["u1", "u2"]
    assert len(split.train) == 5 and len(split.test) == 5


def test_no_held_out_event_leaks_into_training() -> None:
    cutoff = compute_cutoff(EVENTS[C.TS], 0.3)
    split = make_split(EVENTS, cutoff)
    assert split.train[C.TS].max() < cutoff <= split.test[C.TS].min()
    train_keys = set(map(tuple, split.train[[C.USER_ID, C.ITEM_ID, C.TS]].to_numpy()))
    test_keys = set(map(tuple, split.test[[C.USER_ID, C.ITEM_ID, C.TS]].to_numpy()))
    assert not train_keys & test_keys
    assert len(train_keys) + len(test_keys) == len(EVENTS)
    for user, items in split.truth.items():
        trained = set(split.train.loc[split.train[C.USER_ID] == user, C.ITEM_ID])
        assert not items & trained
