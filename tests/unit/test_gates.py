"""Great Expectations gates (slow: the first validation costs seconds, so only a few cases).

Every case runs on both engines: a pandas copy (tables up to LONGTAIL_GATE_PANDAS_MAX_ROWS) and
GX's Spark data source (larger tables); both must pass and fail the same tables.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from longtail import gates
from longtail.gates import (
    GateFailed,
    gate_catalogue,
    gate_cooccurrence,
    gate_item_audiences,
    gate_item_stats,
    gate_recommendations,
    gate_similar,
    small_copy,
)

RECS = (
    "user_id string, rank int, item_id string, score double, source string,"
    " model_version string, is_long_tail boolean, reason_item_id string, reason string"
)
SOURCES = ("als", "popularity")


@pytest.fixture(autouse=True, params=["pandas", "spark"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(
        "LONGTAIL_GATE_PANDAS_MAX_ROWS", "1000000" if request.param == "pandas" else "0"
    )
    return request.param


def test_gate_recommendations_passes_on_a_correct_table(spark):
    df = spark.createDataFrame(
        [
            ("u1", 1, "a", 2.0, "als", "v1", False, "h1", "similar_taste"),
            ("u1", 2, "b", 2.0, "als", "v1", True, "h1", "similar_taste"),  # equal scores are fine
            ("u1", 3, "c", -1.0, "popularity", "v1", False, None, "popular"),
            ("u2", 1, "c", 9.0, "popularity", "v1", False, None, "popular"),
            ("u2", 2, "a", 8.0, "popularity", "v1", False, None, "popular"),
            ("u2", 3, "b", 7.0, "popularity", "v1", True, None, "popular"),
        ],
        RECS,
    )
    summary = gate_recommendations(df, top_n=3, expected_users=2, sources=SOURCES)
    assert summary["success"] is True
    # columns match, 7 not-null, rank range, 2 uniqueness, score drop, source set, row count,
    # reason codes, reason item paired with its code
    assert len(summary["expectations"]) == 16
    assert all(e["success"] for e in summary["expectations"])


def test_gate_recommendations_fails_on_duplicate_item_and_rising_score(spark):
    df = spark.createDataFrame(
        [
            ("u1", 1, "a", 3.0, "als", "v1", False, "h1", "similar_taste"),
            ("u1", 2, "b", 2.0, "als", "v1", False, "h1", "similar_taste"),
            ("u1", 3, "a", 1.0, "als", "v1", False, "h1", "similar_taste"),  # a twice for u1
            ("u2", 1, "c", 1.0, "als", "v1", False, "h1", "similar_taste"),
            ("u2", 2, "a", 5.0, "als", "v1", False, "h1", "similar_taste"),  # score rises with rank
            ("u2", 3, "b", 0.5, "als", "v1", False, "h1", "similar_taste"),
        ],
        RECS,
    )
    with pytest.raises(GateFailed) as err:
        gate_recommendations(df, top_n=3, expected_users=2, sources=SOURCES)
    msg = str(err.value)
    assert msg.startswith("gate 'recommendations' failed: ")
    failed = msg.removeprefix("gate 'recommendations' failed: ").split("; ")
    assert len(failed) == 2, msg
    assert any(
        f.startswith("expect_compound_columns_to_be_unique(column_list=['user_id', 'item_id']")
        for f in failed
    ), msg
    assert any(
        f.startswith("expect_column_values_to_be_between(column=_score_drop") for f in failed
    ), msg


def test_gate_recommendations_checks_reasons_against_codes_and_history(spark):
    df = spark.createDataFrame(
        [
            ("u1", 1, "a", 3.0, "als", "v1", False, "h1", "similar_taste"),
            ("u1", 2, "b", 2.0, "als", "v1", False, "h9", "similar_taste"),  # not u1's item
            ("u2", 1, "c", 1.0, "popularity", "v1", False, None, "popular"),
            ("u2", 2, "a", 0.5, "als", "v1", False, None, "similar_taste"),  # no item
            ("u3", 1, "a", 0.5, "als", "v1", False, None, None),  # no reason at all: allowed
            ("u3", 2, "b", 0.4, "als", "v1", False, "h1", "because"),  # unknown code
        ],
        RECS,
    )
    history = spark.createDataFrame(
        [("u1", "h1"), ("u2", "h1"), ("u3", "h1")], "user_id string, item_id string"
    )
    with pytest.raises(GateFailed) as err:
        gate_recommendations(df, top_n=2, expected_users=3, sources=SOURCES, history=history)
    failed = str(err.value).removeprefix("gate 'recommendations' failed: ").split("; ")
    assert len(failed) == 3, failed
    assert any("column=reason," in f and "because" in f for f in failed), failed
    # no item for similar_taste; an item for the unknown code
    assert any("column=_reason_paired" in f and "2 unexpected" in f for f in failed), failed
    assert any("column=_reason_in_history" in f and "1 unexpected" in f for f in failed), failed


def test_gate_catalogue_fails_on_duplicate_item_ids(spark):
    df = spark.createDataFrame(
        [("i1", "Lamp"), ("i2", "Chair"), ("i1", "Lamp again")], "item_id string, title string"
    )
    with pytest.raises(GateFailed) as err:
        gate_catalogue(df)
    msg = str(err.value)
    assert msg.startswith(
        "gate 'catalogue' failed: expect_column_values_to_be_unique(column=item_id"
    )
    assert "2 unexpected" in msg
    assert ";" not in msg  # the only failure


COOC = "item_id string, neighbour_id string, score double"


def test_gate_cooccurrence_passes_and_names_each_broken_rule(spark):
    good = spark.createDataFrame([("a", "b", 0.5), ("a", "c", 1.0), ("b", "a", 0.5)], COOC)
    assert gate_cooccurrence(good, top=2)["success"]
    bad = spark.createDataFrame(
        [("a", "a", 0.5), ("b", "c", 0.0), ("c", "a", 0.2), ("c", "b", 0.1), ("c", "d", 0.1)],
        COOC,
    )
    with pytest.raises(GateFailed) as failed:
        gate_cooccurrence(bad, top=2)
    message = str(failed.value)
    assert "column=is_self" in message  # a -> a
    assert "column=score" in message  # b -> c scores 0
    assert "column=n_neighbours" in message  # c has three neighbours, top is 2


def test_gate_item_stats_fails_when_recent_users_exceed_users(spark):
    schema = "item_id string, n_users long, n_recent_users long, first_ts timestamp"
    rows = [("a", 3, 1, datetime(2024, 1, 1)), ("b", 1, 2, datetime(2024, 1, 1))]
    with pytest.raises(GateFailed, match="n_recent_users"):
        gate_item_stats(spark.createDataFrame(rows, schema))
    assert gate_item_stats(spark.createDataFrame(rows[:1], schema))["success"]


SIMILAR = "item_id string, rank int, similar_item_id string, score double, source string"


def test_gate_similar_passes_and_names_each_broken_rule(spark):
    rows = [
        ("a", 1, "b", 0.9, "content"),
        ("a", 2, "c", 0.5, "cooccurrence"),
        ("b", 1, "a", 0.9, "content+cooccurrence"),
        ("b", 2, "c", 0.1, "content"),
    ]
    assert gate_similar(spark.createDataFrame(rows, SIMILAR), n_items=2, k=2)["success"]
    with pytest.raises(GateFailed, match="similar_item_id") as failed:  # c is hidden tonight
        gate_similar(spark.createDataFrame(rows, SIMILAR), n_items=2, k=2, hidden=["c"])
    assert "column=_self" not in str(failed.value)
    bad = [("a", 1, "a", 0.9, "content"), ("a", 2, "c", 0.95, "content"), *rows[2:]]
    with pytest.raises(GateFailed) as failed:
        gate_similar(spark.createDataFrame(bad, SIMILAR), n_items=2, k=2)
    assert "column=_self" in str(failed.value)  # a is its own similar item
    assert "column=_drop" in str(failed.value)  # a's score rises from rank 1 to 2


AUDIENCE = (
    "item_id string, rank int, user_id string, score double, is_new boolean, reason_item_id string"
)
HISTORY = "user_id string, item_id string, exclude boolean"


def _audiences(spark, rows):
    return spark.createDataFrame(rows, AUDIENCE)


def test_gate_item_audiences_passes_on_a_correct_table(spark):
    df = _audiences(
        spark,
        [
            ("n1", 1, "u1", 0.9, True, "h1"),
            ("n1", 2, "u2", 0.9, True, "h2"),  # equal scores are fine
            ("n1", 3, "u3", 0.1, True, None),
            ("n2", 1, "u1", 0.5, True, "h1"),  # shorter than k: fine
        ],
    )
    # u3 viewed n1 without owning it (exclude false): may be in its audience
    history = spark.createDataFrame([("u3", "n1", False), ("u1", "x", True)], HISTORY)
    summary = gate_item_audiences(df, 3, ["n1", "n2", "n3"], history)
    assert summary["success"] is True
    assert all(e["success"] for e in summary["expectations"])


def test_gate_item_audiences_fails_on_each_broken_rule(spark):
    df = _audiences(
        spark,
        [
            ("n1", 1, "u1", 0.9, True, "h1"),
            ("n1", 2, "u1", 0.8, True, "h1"),  # u1 twice in n1's audience
            ("n1", 2, "u2", 0.7, True, "h2"),  # rank 2 twice
            ("n2", 1, "u3", 0.2, True, None),
            ("n2", 2, "u4", 0.6, True, None),  # score rises with rank; u4 owns n2
            ("old", 1, "u1", 0.5, False, "h1"),  # not a target
            ("n3", 2, "u1", 0.5, True, "h1"),  # a gap: n3's only row has rank 2
        ],
    )
    history = spark.createDataFrame([("u4", "n2", True)], HISTORY)
    with pytest.raises(GateFailed) as err:
        gate_item_audiences(df, 3, ["n1", "n2", "n3"], history)
    msg = str(err.value)
    failed = {f.split("(")[1].split(",")[0] for f in msg.split(": ", 1)[1].split("; ")}
    assert failed == {
        "column=_rank_repeated",
        "column=_user_repeated",
        "column=_score_drop",
        "column=_owned",
        "column=_target",
        "column=_rank_ok",
    }, msg


def test_small_copy_is_the_whole_frame_or_nothing(spark, monkeypatch, engine):
    df = spark.range(10).selectExpr("id", "id * 3 AS triple")
    copy = small_copy(df, 10)
    assert sorted(copy["id"].tolist()) == list(range(10))
    assert (copy["triple"] == copy["id"] * 3).all()
    assert small_copy(df, 9) is None  # one row over the cap: the general path decides
    assert small_copy(df, 0) is None  # LONGTAIL_GATE_PANDAS_MAX_ROWS=0: always Spark
    monkeypatch.setattr(gates, "SMALL_PLAN_BYTES", 8 * 10 - 1)  # Spark plans range(10) at 80 B
    assert small_copy(df, 10) is None


def test_a_joined_check_frame_is_sized_by_the_table_it_checks(spark, monkeypatch, engine):
    table = spark.range(10).selectExpr("id", "CAST(id % 3 AS BIGINT) AS k")
    other = spark.range(3).selectExpr("id AS k", "true AS owned")
    checked = table.join(other, "k", "left")
    # Spark plans a join at the product of its sides (range(10) x range(3): 80 B x 48 B = 3,840 B)
    monkeypatch.setattr(gates, "SMALL_PLAN_BYTES", 1000)
    assert small_copy(checked, 10) is None
    copy = small_copy(checked, 10, sized_by=table)
    assert sorted(copy["id"].tolist()) == list(range(10)) and copy["owned"].all()
    assert small_copy(checked, 9, sized_by=table) is None  # the row cap still holds


def test_a_table_over_the_pandas_cap_gets_the_same_verdict_in_spark(spark, monkeypatch, engine):
    monkeypatch.setenv("LONGTAIL_GATE_PANDAS_MAX_ROWS", "1")
    good = spark.createDataFrame([("a", "t"), ("b", "u")], "item_id string, title string")
    assert gate_catalogue(good)["success"] is True
    bad = spark.createDataFrame([("a", "t"), ("a", "u")], "item_id string, title string")
    with pytest.raises(GateFailed, match="expect_column_values_to_be_unique"):
        gate_catalogue(bad)
