"""Derived benchmark landings: listing dates written in, held-out and cold-item events taken out."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.landings import derive_landing
from longtail import columns as C
from longtail import landing as L

EVENT_COLS = ("user_id", "item_id", "ts", "event_type")
EVENTS = [
    ("u1", "a", "2024-01-01T10:00:00Z", "purchase"),
    ("u1", " b ", "2024-01-03T10:00:00Z", "purchase"),  # ids are trimmed as ingest does
    ("u2", "a", "1704362400", "view"),  # 2024-01-04T10:00:00Z as epoch seconds
    ("u2", "c", "2024-01-05T10:00:00Z", "purchase"),
    ("u3", "c", "not a time", "purchase"),  # unparseable: kept for cleaning to quarantine
]
ITEMS = [("a", "Alpha", ""), ("b", "Beta", "2023-06-01"), ("c", "Gamma", "")]


def _rows(df) -> list[tuple]:
    return sorted(tuple(r) for r in df.collect())


def test_listing_dates_written_and_events_taken_out(spark, tmp_landing, tmp_path: Path) -> None:
    tmp_landing("events/part.csv", EVENT_COLS, EVENTS)
    src = tmp_landing("items/part.csv", ("item_id", "title", "first_seen"), ITEMS)
    listed = pd.Series(
        pd.to_datetime(["2024-01-01", "2023-06-01", "2024-01-05"], utc=True),
        index=pd.Index(["a", "b", "c"]),
    )
    cuts = pd.Series([pd.Timestamp("2024-01-04T10:00:00Z")], index=pd.Index(["u2"]))
    dst = derive_landing(
        spark, src, tmp_path / "derived", first_seen=listed, drop_items={"b"}, user_cutoffs=cuts
    )
    items = L.read_items(spark, str(dst)).select(C.ITEM_ID, C.TITLE, C.FIRST_SEEN)
    assert [(i, t, str(d)) for i, t, d in _rows(items)] == [
        ("a", "Alpha", "2024-01-01"),
        ("b", "Beta", "2023-06-01"),
        ("c", "Gamma", "2024-01-05"),
    ]
    events = L.read_events(spark, str(dst)).select(C.USER_ID, C.ITEM_ID, C.TS_RAW)
    # b's event is gone (cold item); u2's events at or after 2024-01-04T10:00 are gone.
    assert _rows(events) == [("u1", "a", "2024-01-01T10:00:00Z"), ("u3", "c", "not a time")]


def test_unchanged_tables_are_linked(spark, tmp_landing, tmp_path: Path) -> None:
    tmp_landing("events/part.csv", EVENT_COLS, EVENTS)
    src = tmp_landing("items/part.csv", ("item_id", "title", "first_seen"), ITEMS)
    dst = derive_landing(spark, src, tmp_path / "same")
    assert (dst / "events" / "part.csv").read_text() == (src / "events" / "part.csv").read_text()
    assert (dst / "items" / "part.csv").stat().st_ino == (src / "items" / "part.csv").stat().st_ino
