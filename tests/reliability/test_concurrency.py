"""Concurrency: runs for different dates do not interfere; one date cannot be published twice.

Runs share one in-process Spark session from two threads, as two Airflow tasks would share a
cluster; the warehouse is the shared thing under test.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from reliability_kit import (
    DS,
    assert_no_partial_output,
    leftovers,
    table_hash,
)

from longtail.warehouse.fs import Fs, PublishError
from longtail.warehouse.publish import publish_staged, write_audit_publish
from longtail.warehouse.staging import write_staging

SCHEMA = "user_id string, rank int, item_id string"


def _frames(spark: Any) -> tuple[Any, Any]:
    a = spark.createDataFrame([(f"u{i}", r, f"a{r}") for i in range(3) for r in (1, 2)], SCHEMA)
    b = spark.createDataFrame([(f"u{i}", r, f"b{r}") for i in range(4) for r in (1, 2)], SCHEMA)
    return a, b


def test_second_publish_of_a_date_fails_while_the_first_holds_the_lock(
    spark: Any, tmp_path: Path, monkeypatch
) -> None:
    wh = str(tmp_path / "wh")
    target = tmp_path / "wh" / "recs" / f"ds={DS}"
    a, b = _frames(spark)
    write_staging(a, wh, "recs", DS, attempt="a")
    write_staging(b, wh, "recs", DS, attempt="b")
    expected = {
        name: table_hash(tmp_path / "wh" / "_staging" / "recs" / f"ds={DS}.attempt-{name}")
        for name in ("a", "b")
    }

    in_swap, release = threading.Event(), threading.Event()
    real_rename = Fs.rename

    def rename(self: Fs, src: str, dst: str) -> None:
        if src.endswith(".attempt-a"):  # A holds the lock and is about to move its output
            in_swap.set()
            assert release.wait(120)
        real_rename(self, src, dst)

    monkeypatch.setattr(Fs, "rename", rename)
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(publish_staged, spark, wh, "recs", DS, None, "a")
        assert in_swap.wait(120)
        with pytest.raises(PublishError, match=r"another run is publishing recs ds=2024-05-10"):
            publish_staged(spark, wh, "recs", DS, attempt="b")
        release.set()
        first.result()

    assert table_hash(target) == expected["a"]
    assert_no_partial_output(tmp_path / "wh")
    # B's output is untouched and can be published once A is done: last complete writer wins
    publish_staged(spark, wh, "recs", DS, attempt="b")
    assert table_hash(target) == expected["b"]
    assert leftovers(tmp_path / "wh") == []


def test_racing_write_audit_publish_never_mixes_outputs(spark: Any, tmp_path: Path) -> None:
    """Two writers of one date at once: each either publishes or fails with PublishError."""
    wh = str(tmp_path / "wh")
    target = tmp_path / "wh" / "recs" / f"ds={DS}"
    a, b = _frames(spark)
    expected = {}
    for name, df in (("a", a), ("b", b)):
        write_audit_publish(df, wh, "recs", DS)
        expected[name] = table_hash(target)

    barrier = threading.Barrier(2)

    def writer(df: Any) -> str:
        barrier.wait(60)
        try:
            write_audit_publish(df, wh, "recs", DS, audit=lambda staged: {"rows": staged.count()})
        except PublishError as exc:
            return f"refused: {exc}"
        return "published"

    for _ in range(2):
        with ThreadPoolExecutor(max_workers=2) as pool:
            outcomes = list(pool.map(writer, (a, b)))
        assert "published" in outcomes, outcomes
        assert all(o == "published" or "another run is publishing" in o for o in outcomes)
        assert table_hash(target) in expected.values()
        assert_no_partial_output(tmp_path / "wh")
        assert leftovers(tmp_path / "wh") == []
