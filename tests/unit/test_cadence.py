"""cadence.py: which anchor a night belongs to, and digests that change exactly with their input."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pandas as pd
import pytest

from longtail import cadence

EVENTS_SCHEMA = "user_id string, item_id string, ts timestamp, event_type string, weight double"


def test_a_weekly_anchor_is_the_monday_at_or_before_the_night() -> None:
    # 2024-05-06 is a Monday (a calendar fact, not computed by the code under test)
    assert cadence.anchor(date(2024, 5, 10), 7) == date(2024, 5, 6)
    assert cadence.anchor(date(2024, 5, 6), 7) == date(2024, 5, 6)
    assert cadence.anchor(date(2024, 5, 5), 7) == date(2024, 4, 29)
    assert cadence.anchor(date(2024, 5, 10), 1) == date(2024, 5, 10)
    fortnight = cadence.anchor(date(2024, 5, 10), 14)
    assert fortnight in (date(2024, 5, 6), date(2024, 4, 29))
    with pytest.raises(ValueError):
        cadence.anchor(date(2024, 5, 10), 0)


def test_earlier_nights_are_the_weeks_nights_before_this_one_newest_first() -> None:
    assert list(cadence.earlier_nights(date(2024, 5, 8), 7)) == [date(2024, 5, 7), date(2024, 5, 6)]
    assert list(cadence.earlier_nights(date(2024, 5, 6), 7)) == []
    assert list(cadence.earlier_nights(date(2024, 5, 8), 1)) == []


def test_frame_digest_ignores_row_and_column_order_but_not_values() -> None:
    a = pd.DataFrame({"item_id": ["b", "a"], "title": ["B", "A"], "price": [2.0, 1.0]})
    shuffled = a.iloc[::-1][["price", "item_id", "title"]]
    assert cadence.frame_digest(a, "item_id") == cadence.frame_digest(shuffled, "item_id")
    edited = a.assign(title=["B", "A2"])
    assert cadence.frame_digest(edited, "item_id") != cadence.frame_digest(a, "item_id")


def test_events_digest_counts_the_events_before_the_end_in_any_order(spark: Any) -> None:
    day = datetime(2024, 5, 6, 12)
    rows = [("u1", "i1", day, "view", 1.0), ("u2", "i2", day, "purchase", 2.5)]
    later = [("u3", "i3", datetime(2024, 5, 7, 0, 0), "view", 1.0)]  # at the end: excluded
    end_us = int(pd.Timestamp("2024-05-07", tz="UTC").value // 1000)
    one = cadence.events_digest(spark.createDataFrame(rows + later, EVENTS_SCHEMA), end_us)
    other = spark.createDataFrame(later + rows[::-1], EVENTS_SCHEMA).repartition(3)
    assert one == cadence.events_digest(other, end_us)
    assert one["events"] == 2
    reweighted = [rows[0], ("u2", "i2", day, "purchase", 2.0)]
    assert cadence.events_digest(spark.createDataFrame(reweighted, EVENTS_SCHEMA), end_us) != one
    empty = cadence.events_digest(spark.createDataFrame(later, EVENTS_SCHEMA), end_us)
    assert empty == {"events": 0, "digest": "0-0"}


def test_inputs_key_changes_with_any_part() -> None:
    parts = {"anchor": date(2024, 5, 6), "events": {"events": 2, "digest": "a-b"}}
    assert cadence.inputs_key(parts) == cadence.inputs_key(dict(reversed(parts.items())))
    assert cadence.inputs_key({**parts, "anchor": date(2024, 5, 13)}) != cadence.inputs_key(parts)
