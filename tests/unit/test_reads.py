"""warehouse.reads: a table folder read with the schema its footers record, no Spark job to infer
it, and Spark's own inference wherever that is not plain."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from longtail.warehouse.reads import count_rows, footer_rows, footer_schema, read_parquet

SCHEMA = "user_id string, n bigint, score double, tags array<string>, ts timestamp"
ROWS = [
    ("u1", 1, 0.5, ["a", "b"], None),
    ("u2", None, 1.5, [], None),
    (None, 3, None, None, None),
]


def _write(spark, folder: Path, parts: int = 2) -> None:
    spark.createDataFrame(ROWS, SCHEMA).repartition(parts).write.parquet(str(folder))


def _jobs_while(spark, action) -> tuple[int, Any]:
    """(Spark jobs started while action ran, in a job group of its own; what it returned)."""
    group = f"reads-{uuid.uuid4().hex}"
    spark.sparkContext.setJobGroup(group, group)
    try:
        result = action()
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    return len(spark.sparkContext.statusTracker().getJobIdsForGroup(group)), result


def test_the_footer_schema_is_what_spark_infers_and_no_job_runs(spark, tmp_path):
    folder = tmp_path / "t" / "ds=2024-05-01"
    _write(spark, folder)
    inferred_jobs, inferred = _jobs_while(spark, lambda: spark.read.parquet(str(folder)))
    own_jobs, own = _jobs_while(spark, lambda: read_parquet(spark, str(folder)))
    assert inferred_jobs >= 1  # Spark's inference opens a footer in a job of its own
    assert own_jobs == 0
    assert own.schema == inferred.schema
    assert own.columns == ["user_id", "n", "score", "tags", "ts"]
    assert sorted(map(str, own.collect())) == sorted(map(str, inferred.collect()))
    assert footer_schema(str(folder)) is not None


def test_rows_are_counted_from_the_footers_without_a_job(spark, tmp_path):
    folder = tmp_path / "t"
    _write(spark, folder, parts=3)
    assert len(list(folder.glob("part-*.parquet"))) >= 2
    jobs, rows = _jobs_while(spark, lambda: count_rows(spark, str(folder)))
    assert (jobs, rows) == (0, len(ROWS))
    assert footer_rows(str(folder)) == pq.read_table(folder).num_rows == len(ROWS)
    # a file without Spark's schema: Spark counts it
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    pq.write_table(pa.table({"n": list(range(5))}), foreign / "part-0.parquet")
    assert footer_rows(str(foreign)) is None
    jobs, rows = _jobs_while(spark, lambda: count_rows(spark, str(foreign)))
    assert rows == 5 and jobs >= 1


def test_unusual_folders_are_left_to_sparks_inference(spark, tmp_path):
    # sub-folders (partition discovery): a `ds` column comes from the folder names
    partitioned = tmp_path / "partitioned"
    spark.createDataFrame([("u1", "2024-05-01")], "user_id string, ds string").write.partitionBy(
        "ds"
    ).parquet(str(partitioned))
    assert footer_schema(str(partitioned)) is None
    assert set(read_parquet(spark, str(partitioned)).columns) == {"user_id", "ds"}
    # no data file, only markers
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "_SUCCESS").write_text("")
    assert footer_schema(str(empty)) is None
    # a file written by another writer: no Spark schema in its footer
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    pq.write_table(pa.table({"user_id": ["u9"], "n": [7]}), foreign / "part-0.parquet")
    assert footer_schema(str(foreign)) is None
    assert read_parquet(spark, str(foreign)).collect()[0]["n"] == 7
    # files whose schemas disagree: Spark decides (it reads one footer)
    mixed = tmp_path / "mixed"
    _write(spark, tmp_path / "a", parts=1)
    spark.createDataFrame([("u1", 2)], "user_id string, n int").coalesce(1).write.parquet(
        str(tmp_path / "b")
    )
    mixed.mkdir()
    for name in ("a", "b"):
        (file,) = (tmp_path / name).glob("part-*.parquet")
        file.rename(mixed / f"part-{name}.parquet")
    assert footer_schema(str(mixed)) is None
    # a missing folder
    assert footer_schema(str(tmp_path / "missing")) is None


def test_a_truncated_file_is_reported_by_spark(spark, tmp_path):
    folder = tmp_path / "t"
    _write(spark, folder, parts=1)
    (file,) = folder.glob("part-*.parquet")
    file.write_bytes(file.read_bytes()[:40])
    assert footer_schema(str(folder)) is None
    with pytest.raises(Exception, match=file.name):
        read_parquet(spark, str(folder)).collect()
