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
import pytest
from pyspark.sql.types import DateType
from reliability_kit import DS, EARLIER_DS, read_json

DS_PARTITIONING = pads.partitioning(pa.schema([("ds", pa.date32())]), flavor="hive")
TABLES = ("recommendations", "silver_events", "quarantine")


def _expected_rows(warehouse: Path, table: str) -> int:
    """Rows published for both dates, from the run records (not from reading the tables)."""
    total = 0
    for d in (EARLIER_DS, DS):
        if table == "recommendations":
            total += read_json(warehouse / "_runs" / f"ds={d}" / "publish.json")["counts"]["rows"]
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
