"""Spark job counts per stage and gate: RDD actions run exactly one job each."""

from __future__ import annotations

import threading
from typing import Any

from longtail import spark_jobs


def _one_job(spark: Any) -> None:
    spark.sparkContext.parallelize([1, 2, 3], 1).count()  # an RDD count: one job


def test_a_stage_counts_its_jobs_and_its_gates_apart(spark: Any) -> None:
    _one_job(spark)  # outside any stage: not counted
    with spark_jobs.counted_stage(spark, "stage", "2024-01-01") as jobs:
        _one_job(spark)
        _one_job(spark)
        with spark_jobs.counted_gate(spark, "table"):
            _one_job(spark)
        with spark_jobs.counted_gate(spark, "table"):
            _one_job(spark)
    assert jobs == {"total": 4, "gates": {"table": 2}}
    # the group is restored: a job now belongs to no stage
    assert spark.sparkContext.getLocalProperty(spark_jobs.GROUP) is None


def test_a_gate_outside_a_stage_is_not_counted(spark: Any) -> None:
    with spark_jobs.counted_gate(spark, "table"):
        _one_job(spark)
    assert spark.sparkContext.getLocalProperty(spark_jobs.GROUP) is None


def test_two_stages_in_parallel_threads_are_counted_apart(spark: Any) -> None:
    results: dict[str, dict] = {}

    def stage(name: str, n: int) -> None:
        with spark_jobs.counted_stage(spark, name, "2024-01-01") as jobs:
            for _ in range(n):
                _one_job(spark)
        results[name] = jobs

    threads = [threading.Thread(target=stage, args=(f"s{n}", n)) for n in (1, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"s1": {"total": 1, "gates": {}}, "s3": {"total": 3, "gates": {}}}
