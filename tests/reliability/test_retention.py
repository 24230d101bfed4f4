"""Retention in-process on copies of the two-night reference warehouse.

What is deleted is judged by listing folders before and after (not by trusting the stage's
record), and the record is then checked against that.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads
from reliability_kit import (
    DS,
    EARLIER_DS,
    copy_warehouse,
    leftovers,
    published_partitions,
    read_json,
    resolved_configs,
    run_record,
    run_stage,
    table_hash,
)

from longtail import tables
from longtail.config import RetentionConfig
from longtail.stages.content import cache_table
from longtail.warehouse import layout, leases
from longtail.warehouse.fs import PublishError
from longtail.warehouse.publish import write_audit_publish

MODEL = "all-MiniLM-L6-v2"


def _retention(spark: Any, wh: Path, ds: Any = DS, **fields: Any) -> dict:
    return run_stage(spark, "retention", RetentionConfig(ds=ds, warehouse=str(wh), **fields))


def _present(wh: Path) -> dict[str, list[str]]:
    return {t: p for t, p in published_partitions(wh).items() if p}


def test_one_night_keeps_exactly_the_newest_partitions(
    spark: Any, reference_published: Path, tmp_path: Path
) -> None:
    wh = copy_warehouse(reference_published, tmp_path / "warehouse")
    before = _present(wh)
    intermediate = [t for t in tables.INTERMEDIATE if t in before]
    assert len(intermediate) >= 10 and all(len(before[t]) == 2 for t in intermediate)

    record = _retention(spark, wh, keep_nights=1)

    after = _present(wh)
    for table in intermediate:
        assert after[table] == [f"ds={DS}"], table
    for table in tables.PUBLISHED:  # kept: every night by default
        assert after[table] == before[table] == [f"ds={EARLIER_DS}", f"ds={DS}"], table
    gone = {t: [p[3:] for p in before[t] if p not in after.get(t, [])] for t in before}
    assert record["deleted"] == {t: d for t, d in gone.items() if d}
    assert record == run_record(wh, DS, "retention")
    assert record["skipped"] == [] and record["counts"]["partitions_deleted"] == len(intermediate)
    assert leftovers(wh) == []

    # the next night still finds what it reads of the previous one: its newest partitions
    _retention(spark, wh, keep_nights=1)
    assert _present(wh) == after


def test_published_tables_keep_every_night_unless_told(
    spark: Any, reference_published: Path, tmp_path: Path
) -> None:
    wh = copy_warehouse(reference_published, tmp_path / "warehouse")
    _retention(spark, wh, keep_nights=30, keep_published_nights=1)
    after = _present(wh)
    for table in tables.PUBLISHED:
        assert after[table] == [f"ds={DS}"], table
        assert read_json(wh / table / "_latest.json")["ds"] == DS.isoformat()
    assert all(len(after[t]) == 2 for t in tables.INTERMEDIATE if t in after)


def test_the_newest_partition_of_a_table_is_never_deleted(
    spark: Any, reference_published: Path, tmp_path: Path
) -> None:
    """A run date far after the last night: every window is empty, yet each table keeps one."""
    wh = copy_warehouse(reference_published, tmp_path / "warehouse")
    _retention(spark, wh, ds=DS + timedelta(days=60), keep_nights=1, keep_published_nights=1)
    assert set(map(tuple, _present(wh).values())) == {(f"ds={DS}",)}


def test_nothing_a_running_job_reads_or_publishes_is_deleted(
    spark: Any, reference_published: Path, tmp_path: Path
) -> None:
    wh = copy_warehouse(reference_published, tmp_path / "warehouse")
    lock = layout.lock_path(str(wh), "catalogue", EARLIER_DS)
    # a stage of EARLIER_DS is running (its read lease) ...
    with leases.read_lease(spark, str(wh), layout.night_key(EARLIER_DS)):
        record = _retention(spark, wh, keep_nights=1)
    assert record["deleted"] == {}
    assert {s["reason"] for s in record["skipped"]} == {"in use"}
    assert all(len(p) == 2 for p in _present(wh).values())
    # ... or only a publisher of one partition holds its lock
    Path(lock).parent.mkdir(parents=True, exist_ok=True)
    Path(lock).write_text(leases.lock_holder())
    try:
        record = _retention(spark, wh, keep_nights=1)
    finally:
        os.remove(lock)
    assert record["skipped"] == [{"table": "catalogue", "ds": str(EARLIER_DS), "reason": "locked"}]
    assert _present(wh)["catalogue"] == [f"ds={EARLIER_DS}", f"ds={DS}"]
    assert _present(wh)["interactions"] == [f"ds={DS}"]


def test_a_read_lease_waits_for_a_removal_in_progress(spark: Any, tmp_path: Path) -> None:
    wh = str(tmp_path / "wh")
    with leases.removal_lock(spark, wh, layout.night_key(DS)) as free:
        assert free
        try:
            with leases.read_lease(spark, wh, layout.night_key(DS)):
                raise AssertionError("a stage started while retention removes its night")
        except PublishError as exc:
            assert "retention is removing" in str(exc)
    assert leftovers(Path(wh)) == []


def test_leftovers_of_dead_runs_expire_with_their_night(
    spark: Any, reference_published: Path, tmp_path: Path
) -> None:
    wh = copy_warehouse(reference_published, tmp_path / "warehouse")
    hours_ago = time.time() - 5 * 3600
    old = wh / "_staging" / "recommendations" / f"ds={EARLIER_DS}.attempt-dead1"
    recent = wh / "_staging" / "recommendations" / f"ds={EARLIER_DS}.attempt-handed"
    trash = wh / "_trash" / "catalogue" / f"ds={EARLIER_DS}"
    cached = wh / "_staging" / cache_table(MODEL) / f"ds={EARLIER_DS}.attempt-dead3"
    current = wh / "_staging" / "recommendations" / f"ds={DS}.attempt-dead2"
    for folder in (old, recent, trash / "owner", cached, current):
        folder.mkdir(parents=True)
        (folder / "part-0.parquet").write_bytes(b"x")
    for path in (old, trash, cached, current):
        os.utime(path, (hours_ago, hours_ago))

    record = _retention(spark, wh, keep_nights=1)

    assert not old.exists() and not trash.exists() and not cached.exists()
    assert recent.exists(), "a staged attempt may still be waiting for its publish task"
    assert current.exists(), "the run's own night is in its window"
    assert sorted(record["leftovers_deleted"]) == sorted(
        str(p.relative_to(wh)) for p in (old, trash, cached)
    )


def test_the_embedding_cache_is_compacted_without_changing_embeddings(
    spark: Any, standard_landing: Path, reference_published: Path, tmp_path: Path
) -> None:
    """Two nights that embedded the same texts at once: each text hash is kept once, in the
    earliest night, and the content stage's output is the same after compaction."""
    wh = copy_warehouse(reference_published, tmp_path / "warehouse")
    cache = wh / cache_table(MODEL)
    nights = sorted(p.name for p in cache.iterdir() if p.name.startswith("ds="))
    assert nights == [f"ds={EARLIER_DS}"], nights  # DS found every text cached
    shutil.copytree(cache / f"ds={EARLIER_DS}", cache / f"ds={DS}")  # as a concurrent night would
    n_texts = pads.dataset(str(cache / f"ds={EARLIER_DS}")).count_rows()
    embeddings_before = table_hash(wh / "item_embeddings" / f"ds={DS}")

    record = _retention(spark, wh)  # default: 30 nights, compaction on

    assert record["embedding_cache"] == {
        f"model={MODEL}": {
            "copies_removed": n_texts,
            "partitions_rewritten": [],
            "partitions_removed": [str(DS)],
        }
    }
    data = pads.dataset(str(cache), format="parquet", partitioning="hive").to_table()
    hashes = data.column("text_hash").to_pylist()
    assert len(hashes) == len(set(hashes)) == n_texts
    run_stage(spark, "content", resolved_configs(standard_landing, wh, DS)["content"])
    assert run_record(wh, DS, "content")["counts"]["embedded_now"] == 0
    assert table_hash(wh / "item_embeddings" / f"ds={DS}") == embeddings_before
    assert leftovers(wh) == []


def test_compaction_keeps_the_first_copy_and_rewrites_partly_copied_nights(
    spark: Any, tmp_path: Path
) -> None:
    wh = tmp_path / "wh"
    name = cache_table(MODEL)
    rows = {
        EARLIER_DS: [("a", [1.0]), ("b", [2.0])],
        DS: [("a", [9.0]), ("c", [3.0])],  # "a" again, with other bits: the first copy is read
    }
    for day, data in rows.items():
        frame = spark.createDataFrame(data, "text_hash string, embedding array<float>")
        write_audit_publish(frame, str(wh), name, day)
    with leases.read_lease(spark, str(wh), layout.CACHE_KEY):
        record = _retention(spark, wh)
    assert record["embedding_cache"] == {"skipped": "in use"}
    record = _retention(spark, wh)
    assert record["embedding_cache"][f"model={MODEL}"] == {
        "copies_removed": 1,
        "partitions_rewritten": [str(DS)],
        "partitions_removed": [],
    }
    got = pads.dataset(str(wh / name), format="parquet", partitioning="hive").to_table()
    assert sorted(
        zip(got.column("text_hash").to_pylist(), got.column("embedding").to_pylist(), strict=True)
    ) == [("a", [1.0]), ("b", [2.0]), ("c", [3.0])]
