"""Bronze -> silver: every bronze row is accepted, quarantined with one reason, or deferred.

The bronze fixture is typed by landing.type_events/type_items from literal string rows, with one
row per quarantine reason; all expected values below were worked out by hand.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from longtail import landing
from longtail.cleaning import build_interactions, clean, window_end
from longtail.config import CleanConfig

RAW_EVENT_COLS = ["user_id", "item_id", "ts", "event_type", "quantity", "value"]
RAW_ITEM_COLS = [
    "item_id",
    "title",
    "description",
    "category",
    "brand",
    "price",
    "first_seen",
    "non_product",
]
META_COLS = ["_corrupt_record", "source_file"]
TS_FMT = "yyyy-MM-dd HH:mm:ss"

CFG = CleanConfig(ds="2024-05-01", warehouse="/tmp/longtail-unit-wh", bot_max_events_per_day=3)

# (user_id, item_id, ts, event_type, quantity, value), source_file
ACCEPTED_EVENTS = [
    (("u1", "i1", "2024-05-01T09:00:00Z", "purchase", "3", ""), "a.csv"),
    (("u1", "i2", "2024-04-30T10:00:00Z", "rating", "", "4"), "a.csv"),
    (("u2", "i1", "2024-04-30T11:00:00Z", "view", "", ""), "a.csv"),
    (("u2", "i1", "2024-04-30T12:00:00Z", "view", "", ""), "a.csv"),
    (("u2", "i3", "2024-04-29T10:00:00Z", "view", "", ""), "a.csv"),
    (("u2", "i3", "2024-04-29T11:00:00Z", "", "", ""), "a.csv"),  # purchase by default
    (("u3", "i2", "2024-04-28T08:00:00Z", "review", "", ""), "a.csv"),
]
QUARANTINED_EVENTS = [
    (("", "i1", "2024-04-30T10:00:00Z", "view", "", ""), "a.csv"),  # missing_user_id
    (("u1", " ", "2024-04-30T10:00:00Z", "view", "", ""), "a.csv"),  # missing_item_id
    (("u1", "i1", "not-a-date", "view", "", ""), "a.csv"),  # invalid_timestamp
    (("u1", "i1", "", "view", "", ""), "a.csv"),  # missing_timestamp
    (("u1", "i1", "0", "view", "", ""), "a.csv"),  # timestamp_too_old
    (("u1", "i1", "2024-04-30T10:00:00Z", "click", "", ""), "a.csv"),  # unknown_event_type
    (("u1", "i1", "2024-04-30T10:05:00Z", "purchase", "-1", ""), "a.csv"),  # non_positive_qty
    (("u1", "i1", "2024-04-30T10:06:00Z", "purchase", "lots", ""), "a.csv"),  # invalid_quantity
    (("u1", "i1", "2024-04-30T10:07:00Z", "purchase", "1", "0"), "a.csv"),  # non_positive_price
    (("u1", "fee", "2024-04-30T10:08:00Z", "purchase", "", ""), "a.csv"),  # non_product_item
    (("u1", "i404", "2024-04-30T10:09:00Z", "view", "", ""), "a.csv"),  # unknown_item
    (("u2", "i1", "2024-04-30T11:00:00Z", "view", "", ""), "b.csv"),  # duplicate_event
    # bot: 4 accepted-looking events in one day > bot_max_events_per_day=3
    (("bot", "i1", "2024-04-30T01:00:00Z", "view", "", ""), "a.csv"),
    (("bot", "i2", "2024-04-30T02:00:00Z", "view", "", ""), "a.csv"),
    (("bot", "i3", "2024-04-30T03:00:00Z", "view", "", ""), "a.csv"),
    (("bot", "i1", "2024-04-30T04:00:00Z", "add_to_cart", "", ""), "a.csv"),
]
DEFERRED_EVENTS = [
    (("u1", "i1", "2024-05-02T00:00:00Z", "view", "", ""), "a.csv"),  # exactly the window end
    (("u9", "i2", "2024-05-03T10:00:00Z", "purchase", "", ""), "a.csv"),
]
ITEMS = [
    (("i1", "Lamp", "A lamp", "home", "Lumo", "10.0", "2024-01-01", ""), "a.csv"),
    (("i2", "Chair", None, "home", None, "25", "", ""), "a.csv"),
    (("i3", "Desk", None, "office", None, "", "2024-05-01", "false"), "a.csv"),
    (("fee", "Postage", None, None, None, "3", "", "true"), "a.csv"),  # non_product
    (("i1", "Lamp (copy)", None, "home", None, "11", "", ""), "b.csv"),  # duplicate_item
    (("", "Ghost", None, None, None, "", "", ""), "a.csv"),  # missing_item_id
    (("i9", "Future", None, None, None, "", "2024-05-02", ""), "a.csv"),  # deferred
]


def _raw(spark, cols, rows):
    data = [(*values, None, source) for values, source in rows]
    schema = ", ".join(f"`{c}` string" for c in [*cols, *META_COLS])
    return spark.createDataFrame(data, schema)


@pytest.fixture(scope="module")
def result(spark):
    events = landing.type_events(
        _raw(spark, RAW_EVENT_COLS, ACCEPTED_EVENTS + QUARANTINED_EVENTS + DEFERRED_EVENTS)
    )
    items = landing.type_items(_raw(spark, RAW_ITEM_COLS, ITEMS))
    return clean(events, items, CFG)


def test_window_end_is_midnight_after_run_date():
    assert window_end(CFG).isoformat(sep=" ") == "2024-05-02 00:00:00"


def test_accepted_events_and_weights(result):
    got = result.events.select(
        "user_id",
        "item_id",
        F.date_format("ts", TS_FMT).alias("ts"),
        "event_type",
        "quantity",
        "value",
        "weight",
    )
    assertDataFrameEqual(
        got,
        [
            # purchase, quantity 3: 4 * (1 + ln 3)
            ("u1", "i1", "2024-05-01 09:00:00", "purchase", 3.0, None, 8.394449154672439),
            # rating 4 stars: 3 * 4 / 5
            ("u1", "i2", "2024-04-30 10:00:00", "rating", None, 4.0, 2.4),
            ("u2", "i1", "2024-04-30 11:00:00", "view", None, None, 1.0),
            ("u2", "i1", "2024-04-30 12:00:00", "view", None, None, 1.0),
            ("u2", "i3", "2024-04-29 10:00:00", "view", None, None, 1.0),
            # purchase, no quantity: 4 * (1 + ln 1)
            ("u2", "i3", "2024-04-29 11:00:00", "purchase", None, None, 4.0),
            ("u3", "i2", "2024-04-28 08:00:00", "review", None, None, 4.0),
        ],
    )


@pytest.fixture(scope="module")
def quarantine(result):
    return [r.asDict() for r in result.quarantine.collect()]


def test_quarantine_reasons(quarantine):
    got = Counter((r["table"], r["reason"]) for r in quarantine)
    assert got == Counter(
        {
            ("events", "missing_user_id"): 1,
            ("events", "missing_item_id"): 1,
            ("events", "invalid_timestamp"): 1,
            ("events", "missing_timestamp"): 1,
            ("events", "timestamp_too_old"): 1,
            ("events", "unknown_event_type"): 1,
            ("events", "non_positive_quantity"): 1,
            ("events", "invalid_quantity"): 1,
            ("events", "non_positive_price"): 1,
            ("events", "non_product_item"): 1,
            ("events", "unknown_item"): 1,
            ("events", "duplicate_event"): 1,
            ("events", "bot_activity"): 4,
            ("items", "non_product"): 1,
            ("items", "duplicate_item"): 1,
            ("items", "missing_item_id"): 1,
        }
    )


def _one(quarantine, reason):
    (row,) = [r for r in quarantine if r["reason"] == reason]
    return row


def test_quarantine_keeps_the_source_and_the_record(quarantine):
    assert _one(quarantine, "duplicate_event")["source_file"] == "b.csv"
    assert '"ts_raw":"not-a-date"' in _one(quarantine, "invalid_timestamp")["record"]
    assert '"title":"Lamp (copy)"' in _one(quarantine, "duplicate_item")["record"]
    bots = [r["record"] for r in quarantine if r["reason"] == "bot_activity"]
    assert all('"user_id":"bot"' in rec for rec in bots)


def test_deferred_rows_are_neither_accepted_nor_quarantined(result, quarantine):
    users = {r["user_id"] for r in result.events.select("user_id").collect()}
    assert users == {"u1", "u2", "u3"}  # u9's only event is after the run date
    records = " ".join(r["record"] for r in quarantine)
    for marker in ("2024-05-02T", "2024-05-03T", '"u9"', "Future"):
        assert marker not in records
    catalogue_ids = {r["item_id"] for r in result.catalogue.select("item_id").collect()}
    assert "i9" not in catalogue_ids
    # every non-deferred bronze row is accounted for exactly once
    n_items = sum(1 for r in quarantine if r["table"] == "items")
    n_events = sum(1 for r in quarantine if r["table"] == "events")
    assert len(catalogue_ids) + n_items == len(ITEMS) - 1
    assert result.events.count() + n_events == len(ACCEPTED_EVENTS) + len(QUARANTINED_EVENTS)


def test_catalogue(result):
    got = result.catalogue.select(
        "item_id",
        "title",
        "category",
        "price",
        F.date_format("first_seen", "yyyy-MM-dd").alias("first_seen"),
    )
    assertDataFrameEqual(
        got,
        [
            ("i1", "Lamp", "home", 10.0, "2024-01-01"),
            ("i2", "Chair", "home", 25.0, None),
            ("i3", "Desk", "office", None, "2024-05-01"),
        ],
    )


def test_interactions(result):
    got = result.interactions.select(
        "user_id",
        "item_id",
        "weight",
        "n_events",
        F.date_format("first_ts", TS_FMT).alias("first_ts"),
        F.date_format("last_ts", TS_FMT).alias("last_ts"),
        "exclude",
    )
    assertDataFrameEqual(
        got,
        [
            ("u1", "i1", 8.394449154672439, 1, "2024-05-01 09:00:00", "2024-05-01 09:00:00", True),
            ("u1", "i2", 2.4, 1, "2024-04-30 10:00:00", "2024-04-30 10:00:00", True),
            ("u2", "i1", 2.0, 2, "2024-04-30 11:00:00", "2024-04-30 12:00:00", False),
            ("u2", "i3", 5.0, 2, "2024-04-29 10:00:00", "2024-04-29 11:00:00", True),
            ("u3", "i2", 4.0, 1, "2024-04-28 08:00:00", "2024-04-28 08:00:00", True),
        ],
    )


def test_interaction_weight_does_not_depend_on_row_order(spark):
    # In floating point (0.1 + 0.2) + 0.3 != 0.1 + (0.2 + 0.3); Spark fixes no order within a
    # group, so a plain sum could change bytes between two runs of the same night.
    def weight_of(order):
        rows = [("u", "i", datetime(2024, 5, 1, h), "view", w) for h, w in order]
        events = spark.createDataFrame(
            rows, "user_id string, item_id string, ts timestamp, event_type string, weight double"
        ).coalesce(1)
        return build_interactions(events).collect()[0]["weight"]

    forward = weight_of([(1, 0.1), (2, 0.2), (3, 0.3)])
    backward = weight_of([(3, 0.3), (2, 0.2), (1, 0.1)])
    assert (0.1 + 0.2) + 0.3 != (0.3 + 0.2) + 0.1
    assert forward == backward == 0.6


def test_custom_event_weights_and_clamps(spark):
    cfg = CleanConfig(
        ds="2024-05-01",
        warehouse="/tmp/longtail-unit-wh",
        event_weights={"view": 0.5, "purchase": 2.0},
    )
    rows = [
        (("u1", "i1", "1714500000", "view", "", ""), "a.csv"),
        # quantity above the cap of 100 counts as 100: 2 * (1 + ln 100)
        (("u1", "i1", "1714500001", "purchase", "1000", ""), "a.csv"),
        # fractional quantity below 1 counts as 1: 2 * (1 + ln 1)
        (("u1", "i1", "1714500002", "purchase", "0.5", ""), "a.csv"),
        # rating above 5 stars counts as 5; rating without a value counts as 5: 3 * 5 / 5
        (("u1", "i1", "1714500003", "rating", "", "9"), "a.csv"),
        (("u1", "i1", "1714500004", "rating", "", ""), "a.csv"),
        (("u1", "i1", "1714500005", "add_to_cart", "", ""), "a.csv"),
    ]
    events = landing.type_events(_raw(spark, RAW_EVENT_COLS, rows))
    items = landing.type_items(_raw(spark, RAW_ITEM_COLS, [ITEMS[0]]))
    got = clean(events, items, cfg).events.select("event_type", "quantity", "weight")
    assertDataFrameEqual(
        got,
        [
            ("view", None, 0.5),
            ("purchase", 1000.0, 11.210340371976184),
            ("purchase", 0.5, 2.0),
            ("rating", None, 3.0),
            ("rating", None, 3.0),
            ("add_to_cart", None, 2.0),
        ],
    )
