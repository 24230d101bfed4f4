"""Downstream readers: pyarrow, DuckDB, pandas and Spark read the published tables alike.

Each gets the same row count and `ds` typed as a date from the `ds=YYYY-MM-DD` folder names, and
none of them sees `_SUCCESS`, `.crc` or anything under `_`-prefixed folders.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import DateType
from reliability_kit import DS, EARLIER_DS, read_json

from longtail import manifest as mf
from longtail.reasons import ITEM_REASONS

DS_PARTITIONING = pads.partitioning(pa.schema([("ds", pa.date32())]), flavor="hive")
TABLES = ("recommendations", "item_audiences", "silver_events", "quarantine")


def _expected_rows(warehouse: Path, table: str) -> int:
    """Rows published for both dates, from the run records (not from reading the tables)."""
    total = 0
    for d in (EARLIER_DS, DS):
        if table in ("recommendations", "item_audiences"):
            stage = "publish" if table == "recommendations" else table
            total += read_json(warehouse / "_runs" / f"ds={d}" / f"{stage}.json")["counts"]["rows"]
            continue
        counts = read_json(warehouse / "_runs" / f"ds={d}" / "clean.json")["counts"]
        if table == "silver_events":
            total += counts["events_accepted"]
        else:
            total += counts["events_quarantined"] + counts["items_quarantined"]
    return total


@pytest.fixture(scope="module")
def published(reference_published: Path) -> Path:
    return reference_published


@pytest.mark.parametrize("table", TABLES)
def test_every_reader_sees_the_same_rows_and_a_date_typed_ds(
    spark: Any, published: Path, table: str
) -> None:
    root = published / table
    expected = _expected_rows(published, table)
    assert expected > 0

    # pyarrow
    data = pads.dataset(str(root), format="parquet", partitioning=DS_PARTITIONING)
    arrow = data.to_table()
    assert arrow.num_rows == expected
    assert arrow.schema.field("ds").type == pa.date32()
    assert set(arrow.column("ds").to_pylist()) == {EARLIER_DS, DS}

    # pandas (pyarrow engine): datetime.date objects, or date32 with pyarrow dtypes
    frame = pd.read_parquet(root, partitioning=DS_PARTITIONING)
    assert len(frame) == expected
    assert all(type(v) is dt.date for v in frame["ds"].unique())
    frame = pd.read_parquet(root, partitioning=DS_PARTITIONING, dtype_backend="pyarrow")
    assert str(frame["ds"].dtype) == "date32[day][pyarrow]"

    # DuckDB: the glob names the partitions, so nothing outside ds=* folders is read
    con = duckdb.connect()
    n, ds_type, days = con.execute(
        "SELECT count(*), any_value(typeof(ds)), count(DISTINCT ds) FROM read_parquet(?, "
        "hive_partitioning = true, hive_types = {'ds': DATE})",
        [f"{root}/ds=*/*.parquet"],
    ).fetchone()
    assert (n, ds_type, days) == (expected, "DATE", 2)

    # Spark: partition discovery infers DateType from the folder names by default
    sdf = spark.read.parquet(str(root))
    assert sdf.count() == expected
    assert isinstance(sdf.schema["ds"].dataType, DateType)
    assert {r["ds"] for r in sdf.select("ds").distinct().collect()} == {EARLIER_DS, DS}


def test_readers_agree_on_content(spark: Any, published: Path) -> None:
    """The same recommendations through all four readers, row for row."""
    root = published / "recommendations"
    cols = ["ds", "user_id", "rank", "item_id", "score", "source", "model_version"]

    def norm(df: pd.DataFrame) -> pd.DataFrame:
        out = df[cols].copy()
        out["ds"] = pd.to_datetime(out["ds"]).dt.date
        out["rank"] = out["rank"].astype("int64")
        return out.sort_values(cols[:3]).reset_index(drop=True)

    arrow = norm(pads.dataset(str(root), partitioning=DS_PARTITIONING).to_table().to_pandas())
    frame = norm(pd.read_parquet(root, partitioning=DS_PARTITIONING))
    duck = norm(
        duckdb.connect()
        .execute(
            "SELECT * FROM read_parquet(?, hive_partitioning = true, hive_types = {'ds': DATE})",
            [f"{root}/ds=*/*.parquet"],
        )
        .df()
    )
    spark_df = norm(spark.read.parquet(str(root)).toPandas())
    for other in (frame, duck, spark_df):
        pd.testing.assert_frame_equal(arrow, other, check_exact=True)


def test_the_reason_columns_are_read_by_every_reader(spark: Any, published: Path) -> None:
    """Schema v2: every reader gets reason and reason_item_id, null exactly where documented."""
    root = published / "recommendations"
    frame = pd.read_parquet(root, partitioning=DS_PARTITIONING)
    assert frame["reason"].notna().any()
    assert (frame["reason_item_id"].notna() == frame["reason"].isin(ITEM_REASONS)).all()
    (n, named) = (
        duckdb.connect()
        .execute(
            "SELECT count(reason), count(reason_item_id) FROM read_parquet(?)",
            [f"{root}/ds=*/*.parquet"],
        )
        .fetchone()
    )
    assert (n, named) == (frame["reason"].notna().sum(), frame["reason_item_id"].notna().sum())
    sdf = spark.read.parquet(str(root))
    assert sdf.where("reason IS NOT NULL").count() == n


def _old_and_new_partitions(root: Path) -> None:
    """A schema v1 night (as published before the reason columns) beside a v2 night."""
    names = [n for n, _ in mf.schema_columns("recommendations")]
    base = [["u1", "u1"], [1, 2], ["a", "b"], [2.0, 1.0], ["als", "popularity"], ["v"] * 2]
    base.append([False, True])
    for ds, columns in (
        (EARLIER_DS, base),
        (DS, [*base, ["h", None], ["similar_taste", "popular"]]),
    ):
        folder = root / f"ds={ds}"
        folder.mkdir(parents=True)
        schema = mf.arrow_schema("recommendations")
        table = pa.table(
            [pa.array(c, schema.field(n).type) for n, c in zip(names, columns, strict=False)],
            names=names[: len(columns)],
        )
        pq.write_table(table, folder / "part-00000.parquet")
        (folder / "_SUCCESS").write_text("")


def test_schema_v1_partitions_read_with_null_reasons(spark: Any, tmp_path: Path) -> None:
    """Nights published before schema v2 stay readable beside newer ones: each reader is told to
    take the union of the columns (the current schema), and v1 rows read reason as null."""
    root = tmp_path / "recommendations"
    _old_and_new_partitions(root)
    want = {EARLIER_DS: [None, None], DS: ["similar_taste", "popular"]}

    # pyarrow and pandas: the current schema (longtail.manifest.arrow_schema) plus ds
    schema = mf.arrow_schema("recommendations").append(pa.field("ds", pa.date32()))
    frame = pd.read_parquet(root, schema=schema, partitioning=DS_PARTITIONING)
    got = frame.sort_values(["ds", "rank"]).groupby("ds")["reason"].agg(list).to_dict()
    assert {d: [None if pd.isna(v) else v for v in vs] for d, vs in got.items()} == want

    # DuckDB: union_by_name fills a file's missing columns with NULL
    rows = (
        duckdb.connect()
        .execute(
            "SELECT ds, list(reason ORDER BY rank) FROM read_parquet(?, union_by_name = true, "
            "hive_partitioning = true, hive_types = {'ds': DATE}) GROUP BY ds",
            [f"{root}/ds=*/*.parquet"],
        )
        .fetchall()
    )
    assert dict(rows) == want

    # Spark: mergeSchema takes the union of the files' schemas
    sdf = spark.read.option("mergeSchema", "true").parquet(str(root))
    assert {"reason", "reason_item_id"} <= set(sdf.columns)
    got = {
        r["ds"]: r["reasons"]
        for r in sdf.groupBy("ds")
        .agg(F.sort_array(F.collect_list(F.struct("rank", "reason"))).alias("reasons"))
        .collect()
    }
    assert {d: [x["reason"] for x in v] for d, v in got.items()} == want
