"""Same bytes under any schedule: the nights' tables do not depend on how they were run.

The reference (conftest `reference_published`) runs the two nights one after another on the
session-wide Spark (local[2], 2 shuffle partitions). Each test here runs the same nights another
way and compares the content hash of every table the nights write, published and intermediate:
- both nights in parallel threads on that one session;
- DS alone on a fresh warehouse, in a second session on the same context with 8 shuffle
  partitions that are not coalesced (this also checks that a night needs no earlier one);
- DS alone on a fresh warehouse, in another process on local[1] with 1 shuffle partition.
Before these, two tests pin the cause of a failure seen in CI: SQL inputs registered as session
temp views under fixed names, so two nights sharing a session could read each other's events.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from reliability_kit import (
    DS,
    EARLIER_DS,
    NIGHTS,
    assert_same_nights,
    full_pipeline,
)

from longtail.cleaning import build_interactions

EVENTS_SCHEMA = "user_id string, item_id string, ts timestamp, event_type string, weight double"
KIT_DIR = Path(__file__).parent


def _events(spark: Any, users: list[str]) -> Any:
    t = datetime(2024, 5, 1, 12)
    rows = [(u, f"i{k}", t, "view", 1.0) for u in users for k in range(3)]
    rows += [(u, "i0", t, "purchase", 2.5) for u in users]
    return spark.createDataFrame(rows, EVENTS_SCHEMA)


def _interaction_rows(df: Any) -> list[tuple]:
    return sorted(
        (r.user_id, r.item_id, r.weight, r.n_events, r.exclude)
        for r in df.select("user_id", "item_id", "weight", "n_events", "exclude").collect()
    )


def _expected(users: list[str]) -> list[tuple]:
    """By hand: i0 viewed (1.0) and bought (2.5) -> 3.5 over 2 events, excluded; i1, i2 viewed."""
    out = [(u, "i0", 3.5, 2, True) for u in users]
    out += [(u, f"i{k}", 1.0, 1, False) for u in users for k in (1, 2)]
    return sorted(out)


def _temp_views(spark: Any) -> set[str]:
    """The session's temporary views. SHOW VIEWS, not catalog.listTables(): the tests' session
    interprets expressions (tests/conftest.py), and Spark cannot decode listTables' rows so."""
    return {r.viewName for r in spark.sql("SHOW VIEWS").collect() if r.isTemporary}


def test_sql_inputs_are_bound_per_call_not_by_session_view_names(spark: Any) -> None:
    """A view that another night (or a user) registered as `silver_events` is neither read nor
    replaced."""
    mine, theirs = ["me1", "me2"], ["other1"]
    decoy = _events(spark, theirs)
    decoy.createOrReplaceTempView("silver_events")
    try:
        before = _temp_views(spark)
        result = build_interactions(_events(spark, mine))
        assert _interaction_rows(result) == _expected(mine)
        assert _interaction_rows(build_interactions(spark.table("silver_events"))) == _expected(
            theirs
        )
        after = _temp_views(spark)
        assert after == before  # nothing left registered in the session by the call
    finally:
        spark.catalog.dropTempView("silver_events")


def test_sql_calls_from_parallel_threads_read_only_their_own_inputs(spark: Any) -> None:
    """Two threads analyse the same SQL file at once, many times: each gets its own rows."""
    rounds = 25
    barrier = threading.Barrier(2)

    def night(name: str) -> list[list[tuple]]:
        users = [f"{name}-u{k}" for k in range(3)]
        events = _events(spark, users)
        out = []
        for _ in range(rounds):
            barrier.wait(60)
            out.append(_interaction_rows(build_interactions(events)))
        return out

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip("ab", pool.map(night, "ab"), strict=True))
    for name, runs in results.items():
        expected = _expected([f"{name}-u{k}" for k in range(3)])
        wrong = sum(rows != expected for rows in runs)
        assert wrong == 0, f"night {name}: {wrong} of {rounds} results computed from other input"


@pytest.mark.slow
def test_nights_in_parallel_threads_on_one_session(
    spark: Any, standard_landing: Path, reference_published: Path, tmp_path: Path
) -> None:
    """Every stage of both nights at once, but for one declared order: `quality` of a night scores
    the newest list published before it, so it follows the earlier night's publish (the DAG runs
    one night at a time, max_active_runs=1)."""
    wh = tmp_path / "warehouse"
    earlier_published = threading.Event()

    def night(ds: Any) -> list[str]:
        ran: list[str] = []

        def before(stage: str) -> None:
            if ds == EARLIER_DS and "publish" in ran:
                earlier_published.set()
            if ds == DS and stage == "quality":
                assert earlier_published.wait(600)
            ran.append(stage)

        try:
            return full_pipeline(spark, standard_landing, wh, ds, before=before)
        finally:
            earlier_published.set()  # never leave the other night waiting on a failure

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(night, NIGHTS))
    assert done[0] == done[1]
    assert_same_nights(wh, reference_published)


@pytest.mark.slow
def test_a_night_with_eight_uncoalesced_shuffle_partitions(
    spark: Any, standard_landing: Path, reference_published: Path, tmp_path: Path
) -> None:
    """DS alone on a fresh warehouse, in another session on the same context: its own SQL conf
    (8 shuffle partitions, adaptive coalescing off), so the shared session's is untouched."""
    other = spark.newSession()
    other.conf.set("spark.sql.shuffle.partitions", "8")
    other.conf.set("spark.sql.adaptive.coalescePartitions.enabled", "false")
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"
    wh = tmp_path / "warehouse"
    full_pipeline(other, standard_landing, wh, DS)
    assert_same_nights(wh, reference_published, (DS,))


@pytest.mark.slow
def test_a_night_on_one_core_with_one_shuffle_partition(
    standard_landing: Path, reference_published: Path, tmp_path: Path
) -> None:
    """DS alone on a fresh warehouse, in a process of its own (one SparkContext per process):
    local[1], 1 shuffle partition."""
    wh = tmp_path / "warehouse"
    args = [str(KIT_DIR / "run_nights.py"), str(standard_landing), str(wh), DS.isoformat()]
    done = subprocess.run(
        [sys.executable, *args, "--shuffle-partitions", "1"],
        env={**os.environ, "LONGTAIL_SPARK_MASTER": "local[1]"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.startswith("cores 1\n"), done.stdout
    assert_same_nights(wh, reference_published, (DS,))
