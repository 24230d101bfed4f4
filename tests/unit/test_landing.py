"""Landing contract: formats, folders, column matching, contract errors, row parse errors."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from longtail import landing
from longtail.landing import LandingContractError

DAY = "events/dt=2024-05-01"
TS_FMT = "yyyy-MM-dd HH:mm:ss"


def _events_view(df):
    """Typed events with ts rendered in the session time zone (UTC), source_file dropped."""
    return df.select(
        "user_id",
        "item_id",
        F.date_format("ts", TS_FMT).alias("ts"),
        "event_type",
        "quantity",
        "value",
        "parse_error",
    )


@pytest.mark.parametrize("ext", ["csv", "csv.gz", "jsonl", "parquet"])
def test_each_format_is_read_with_case_insensitive_columns_and_extras_ignored(
    spark, tmp_landing, ext
):
    columns = ["User_ID", "ITEM_ID", "Ts", "Event_Type", "Quantity", "VALUE", "shop_note"]
    rows = [
        ["u1", "i1", "2024-05-01T10:00:00Z", "purchase", "2", "", "x"],
        ["u2", "i2", "2024-05-01T11:30:00Z", "view", "", "", "y"],
    ]
    root = tmp_landing(f"{DAY}/part-0.{ext}", columns, rows)
    df = landing.read_events(spark, str(root))

    assert "shop_note" not in df.columns
    assertDataFrameEqual(
        _events_view(df),
        [
            ("u1", "i1", "2024-05-01 10:00:00", "purchase", 2.0, None, None),
            ("u2", "i2", "2024-05-01 11:30:00", "view", None, None, None),
        ],
    )
    files = {r.source_file for r in df.select("source_file").collect()}
    assert files == {f"file://{root}/{DAY}/part-0.{ext}"}


def test_mixed_formats_under_dt_folders_skipping_hidden_and_metadata(spark, tmp_landing):
    cols = ["user_id", "item_id", "ts"]
    tmp_landing("events/dt=2024-05-01/a.csv", cols, [["u1", "i1", "1714557600"]])
    tmp_landing("events/dt=2024-05-02/b.parquet", cols, [["u2", "i2", "1714644000"]])
    tmp_landing("events/dt=2024-05-02/c.jsonl", cols, [["u3", "i3", "1714644000"]])
    # would break the reader (no known extension) if they were not skipped
    tmp_landing("events/_SUCCESS", raw="")
    tmp_landing("events/dt=2024-05-02/.c.jsonl.crc", raw="junk")
    root = tmp_landing("events/_tmp/d.csv", cols, [["u9", "i9", "1714644000"]])

    df = landing.read_events(spark, str(root))
    assertDataFrameEqual(
        df.select("user_id", "item_id", F.date_format("ts", TS_FMT).alias("ts"), "event_type"),
        [
            ("u1", "i1", "2024-05-01 10:00:00", "purchase"),
            ("u2", "i2", "2024-05-02 10:00:00", "purchase"),
            ("u3", "i3", "2024-05-02 10:00:00", "purchase"),
        ],
    )


def test_missing_required_column_names_file_and_column(spark, tmp_landing):
    root = tmp_landing(f"{DAY}/part-7.csv", ["user_id", "ts"], [["u1", "1714557600"]])
    with pytest.raises(LandingContractError) as err:
        landing.read_events(spark, str(root))
    msg = str(err.value)
    assert f"{DAY}/part-7.csv" in msg
    assert "missing required column 'item_id'" in msg


def test_missing_required_item_column_in_jsonl(spark, tmp_landing):
    root = tmp_landing("items/catalogue.jsonl", ["item_id", "name"], [["i1", "Lamp"]])
    missing = r"catalogue\.jsonl: missing required column 'title'"
    with pytest.raises(LandingContractError, match=missing):
        landing.read_items(spark, str(root))


def test_unsupported_extension(spark, tmp_landing):
    root = tmp_landing(f"{DAY}/part-0.txt", raw="user_id,item_id,ts\nu1,i1,0\n")
    with pytest.raises(LandingContractError, match=r"part-0\.txt: unsupported file type"):
        landing.read_events(spark, str(root))


def test_empty_events_folder(spark, tmp_landing):
    root = tmp_landing("items/items.csv", ["item_id", "title"], [["i1", "Lamp"]])
    (root / "events").mkdir()
    with pytest.raises(LandingContractError, match=r"events: no data files found"):
        landing.read_events(spark, str(root))


def test_missing_optional_users_folder_is_none(spark, tmp_landing):
    root = tmp_landing("items/items.csv", ["item_id", "title"], [["i1", "Lamp"]])
    assert landing.read_users(spark, str(root)) is None


def test_truncated_parquet_names_the_file(spark, tmp_landing):
    root = tmp_landing(f"{DAY}/broken.parquet", ["user_id", "item_id", "ts"], [["u1", "i1", "0"]])
    path = root / DAY / "broken.parquet"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(LandingContractError, match=r"broken\.parquet: unreadable parquet file"):
        landing.read_events(spark, str(root))


def test_malformed_csv_lines_are_kept_and_flagged(spark, tmp_landing):
    raw = (
        "user_id,item_id,ts,event_type,note\n"
        "u1,i1,1714557600,view,ok\n"
        'u2,"i2,1714557600,view,ok\n'  # unterminated quote
        "u3,i3,1714557600,view,ok,surplus,fields\n"  # more fields than the header
        "u4,i4,1714557600,view,ok\n"
    )
    root = tmp_landing(f"{DAY}/part-0.csv", raw=raw)
    df = landing.read_events(spark, str(root))
    assertDataFrameEqual(
        df.select("user_id", "parse_error", F.col("_corrupt_record").isNotNull().alias("has_raw")),
        [
            ("u1", None, False),
            ("u2", "malformed_row", True),
            ("u3", "malformed_row", True),
            ("u4", None, False),
        ],
    )
    corrupt = df.where("user_id = 'u3'").select("_corrupt_record").first()[0]
    assert corrupt == "u3,i3,1714557600,view,ok,surplus,fields"


def test_timestamps_quantities_and_event_types(spark, tmp_landing):
    columns = ["user_id", "item_id", "ts", "event_type", "quantity", "value"]
    rows = [
        ["u1", "i1", "2024-05-01T10:00:00Z", "VIEW", "", ""],
        ["u2", "i1", "2024-05-01T12:00:00+02:00", "", "", ""],
        ["u3", "i1", "1714557600", " Rating ", "", "4"],
        ["u4", "i1", "1714557600000", "purchase", "3", ""],
        ["u5", "i1", "not-a-date", "view", "", ""],
        ["u6", "i1", "2024-05-01T10:00:00Z", "purchase", "two", ""],
        ["u7", "i1", "2024-05-01T10:00:00Z", "rating", "", "five"],
        ["u8", "i1", "", "view", "", ""],
        [" ", "", "0", "view", "", ""],
    ]
    root = tmp_landing(f"{DAY}/part-0.csv", columns, rows)
    df = landing.read_events(spark, str(root))
    assertDataFrameEqual(
        _events_view(df),
        [
            ("u1", "i1", "2024-05-01 10:00:00", "view", None, None, None),
            ("u2", "i1", "2024-05-01 10:00:00", "purchase", None, None, None),
            ("u3", "i1", "2024-05-01 10:00:00", "rating", None, 4.0, None),
            ("u4", "i1", "2024-05-01 10:00:00", "purchase", 3.0, None, None),
            ("u5", "i1", None, "view", None, None, "invalid_timestamp"),
            ("u6", "i1", "2024-05-01 10:00:00", "purchase", None, None, "invalid_quantity"),
            ("u7", "i1", "2024-05-01 10:00:00", "rating", None, None, "invalid_value"),
            ("u8", "i1", None, "view", None, None, None),
            (None, None, "1970-01-01 00:00:00", "view", None, None, None),
        ],
    )
    assert df.where("user_id = 'u5'").select("ts_raw").first()[0] == "not-a-date"


def test_event_type_defaults_to_purchase_when_column_absent(spark, tmp_landing):
    root = tmp_landing(
        f"{DAY}/part-0.jsonl", ["user_id", "item_id", "ts"], [["u1", "i1", "1714557600"]]
    )
    df = landing.read_events(spark, str(root))
    assertDataFrameEqual(
        df.select("user_id", "event_type", "quantity", "value"), [("u1", "purchase", None, None)]
    )


def test_items_are_typed(spark, tmp_landing):
    columns = ["item_id", "title", "price", "first_seen", "non_product"]
    rows = [
        ["i1", " Lamp ", "9.5", "2024-04-30", ""],
        ["i2", "Postage", "3", "", "TRUE"],
        ["i3", "Chair", "cheap", "1714557600", "no"],
    ]
    root = tmp_landing("items/items.csv", columns, rows)
    df = landing.read_items(spark, str(root))
    assertDataFrameEqual(
        df.select(
            "item_id",
            "title",
            "price",
            F.date_format("first_seen", "yyyy-MM-dd").alias("first_seen"),
            "non_product",
            "parse_error",
        ),
        [
            ("i1", "Lamp", 9.5, "2024-04-30", False, None),
            ("i2", "Postage", 3.0, None, True, None),
            ("i3", "Chair", None, "2024-05-01", False, "invalid_price"),
        ],
    )
