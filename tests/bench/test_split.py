"""The temporal split: a global cutoff at midnight, no held-out event in training."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.split import (
    cold_start_truth,
    compute_cutoff,
    listing_dates,
    make_split,
    pick_cold_items,
    split_events,
    user_holdout_split,
)
from longtail import columns as C


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


# ----------------------------------------------------------------------- user holdout (ratings)


def test_user_holdout_keeps_each_users_earlier_ratings() -> None:
    rows = [("r1", f"i{j}", f"2024-01-0{j + 1}T10:00:00Z") for j in range(5)]  # 5 ratings
    rows += [("r2", f"i{j}", "2024-01-01T10:00:00Z") for j in range(6)]  # 6 ratings, one instant
    rows += [("r3", "i0", "2024-01-01T10:00:00Z"), ("r3", "i1", "2024-01-02T10:00:00Z")]  # 2
    split = user_holdout_split(_events(rows), 0.4, min_events=5)
    # r1: floor(5 * 0.4) = 2 held out -> the two latest (i3, i4), cutoff at i3's time.
    # r2: floor(6 * 0.4) = 2 -> cutoff is the shared instant, so all six are held out and r2 has
    #     no training history left: not an eval user. r3 has < 5 ratings: stays whole.
    assert split.truth == {"r1": {"i3", "i4"}}
    assert split.user_cutoffs["r1"] == pd.Timestamp("2024-01-04T10:00:00Z")
    assert split.user_cutoffs["r2"] == pd.Timestamp("2024-01-01T10:00:00Z")
    assert "r3" not in split.user_cutoffs.index
    assert sorted(split.train[C.USER_ID]) == ["r1", "r1", "r1", "r3", "r3"]
    assert split.protocol == "user_holdout"
    # The pipeline runs on the last day of the data.
    assert split.run_date == pd.Timestamp("2024-01-05").date()
    assert split.cutoff == pd.Timestamp("2024-01-06", tz="UTC")


def test_split_events_dispatches_on_protocol() -> None:
    assert split_events(EVENTS, "temporal", 0.3).protocol == "temporal"
    with pytest.raises(ValueError, match="protocol"):
        split_events(EVENTS, "random", 0.3)


# ----------------------------------------------------------------------- listing dates


def test_listing_dates_modes() -> None:
    given = pd.Series(
        [pd.NaT, pd.Timestamp("2023-12-01"), pd.NaT, pd.Timestamp("2024-02-01")],
        index=pd.Index(["a", "b", "c", "z"], name=C.ITEM_ID),
    )
    # first events: a 2024-01-01, b 2024-01-02, c 2024-01-04, d 2024-01-07; z has none
    auto = listing_dates(given, EVENTS, "auto")
    assert auto["a"] == pd.Timestamp("2024-01-01", tz="UTC")  # none given: first event
    assert auto["b"] == pd.Timestamp("2023-12-01", tz="UTC")  # given wins
    assert auto["c"] == pd.Timestamp("2024-01-04", tz="UTC")
    first = listing_dates(given, EVENTS, "first_event")
    assert first["b"] == pd.Timestamp("2024-01-02", tz="UTC")  # first event wins
    assert first["z"] == pd.Timestamp("2024-02-01", tz="UTC")  # no event: landing value kept
    landing = listing_dates(given, EVENTS, "landing")
    assert pd.isna(landing["a"]) and landing["b"] == pd.Timestamp("2023-12-01", tz="UTC")
    with pytest.raises(ValueError):
        listing_dates(given, EVENTS, "never")


def test_no_training_event_falls_before_its_items_listing_date() -> None:
    given = pd.Series(pd.NaT, index=pd.Index(["a", "b", "c", "d"]), dtype="datetime64[ns, UTC]")
    listed = listing_dates(given, EVENTS, "auto")
    split = make_split(EVENTS, pd.Timestamp("2024-01-06", tz="UTC"))
    run_end = split.cutoff  # the run for the day before reads events before this instant
    for item, day in listed.items():
        events = EVENTS[EVENTS[C.ITEM_ID] == item]
        assert (events[C.TS] >= day).all()
    # d is first seen after the cutoff: not listed on the run date, so nothing can recommend it.
    assert listed["d"] >= run_end
    assert (listed[["a", "b", "c"]] < run_end).all()


# ----------------------------------------------------------------------- item cold start


def test_cold_items_are_a_seeded_share_of_trained_items() -> None:
    train = pd.DataFrame({C.USER_ID: ["u"] * 20, C.ITEM_ID: [f"i{j:02d}" for j in range(20)]})
    cold = pick_cold_items(train, 0.1, seed=7)
    assert len(cold) == 2 and cold <= set(train[C.ITEM_ID])
    assert pick_cold_items(train, 0.1, seed=7) == cold
    assert any(pick_cold_items(train, 0.1, seed=s) != cold for s in range(8, 20))
    truth = {"u1": {"i00", "x"}, "u2": {"x"}}
    assert cold_start_truth(truth, {"i00"}) == {"u1": {"i00"}}
