"""Backfill through real Airflow: scheduler, api-server and dag-processor as separate processes.

A long variant (LONGTAIL_LONG_TESTS=1; LONGTAIL_BACKFILL_DAYS nights, 3 by default: about 12
minutes on two cores; 7: about 26). By default backfills through a real scheduler are covered by
tests/deployment (a one-night backfill from the UI, on PostgreSQL and a Spark cluster); this one
adds the comparison of every backfilled night with a single run of that date.

A tiny generated shop; `airflow backfill create` over its last LONGTAIL_BACKFILL_DAYS days with
--max-active-runs 2 --reprocess-behavior completed: two runs at once and one that must wait. Shows:
- every run succeeds and publishes recommendations/ds=<data interval start>;
- never more than two backfill runs at a time (sampled while running, and from the runs' start
  and end times afterwards), and the limit is used: two runs did overlap;
- every night's tables equal (content hash) a single in-process run of that date on a fresh
  warehouse with the same configs: each partition equals its single run;
- a second backfill with --reprocess-behavior none over the same dates creates no run.

The DAG's task list is not assumed: the test waits for dag runs, not for tasks. The processes
are started in their own process groups and stopped by PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json
import os
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from reliability_kit import (
    PIPELINE_OVERRIDES,
    TOP_N,
    full_pipeline,
    published_partitions,
    warehouse_hashes,
)

from bench.airflow_local import (
    DAG_ID,
    Airflow,
    Db,
    backfill,
    free_port,
    local_airflow_env,
    wait_for_backfill,
)
from longtail.sample import SampleConfig, generate

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.long,
]

SAMPLE = SampleConfig(n_users=200, n_items=120, n_days=12, n_categories=6, seed=5)
DAYS = int(os.environ.get("LONGTAIL_BACKFILL_DAYS", "3"))
MAX_ACTIVE_RUNS = 2
TIMEOUT_S = int(os.environ.get("LONGTAIL_BACKFILL_TIMEOUT_S", str(50 * 60)))
HISTORY_TABLES = {"quality_metrics"}  # depends on earlier nights, not only on the night's inputs


def _ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _most_overlapping(spans: list[tuple[Any, Any]]) -> int:
    """The most runs in progress at one instant, from (start, end) pairs."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])  # ends sort first
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def test_backfill_through_airflow(spark: Any, tmp_path: Path) -> None:
    started = time.time()
    landing, warehouse, home = tmp_path / "landing", tmp_path / "warehouse", tmp_path / "airflow"
    home.mkdir()
    generate(landing, SAMPLE)
    last = date.fromisoformat(SAMPLE.end_date)
    first = last - timedelta(days=DAYS - 1)
    days = [first + timedelta(days=i) for i in range(DAYS)]

    env = local_airflow_env(home, landing, warehouse, free_port())
    env["AIRFLOW__CORE__PARALLELISM"] = "3"
    env["LONGTAIL_DRIVER_MEMORY"] = "1g"
    af = Airflow(home, env)
    migrate = af.cli("db", "migrate")
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    db = Db(home / "airflow.db")
    try:
        af.start()
        deadline = time.time() + TIMEOUT_S
        while not db.rows("SELECT 1 FROM serialized_dag WHERE dag_id = ?", DAG_ID):
            af.check_alive()
            assert time.time() < deadline, af.tail("dag-processor")
            time.sleep(3)

        conf = {"top_n": TOP_N, "overrides": PIPELINE_OVERRIDES}
        backfill(af, first, last, "completed", MAX_ACTIVE_RUNS, conf)
        most_running = wait_for_backfill(db, af, DAYS, deadline)
        runs = db.runs()
        (backfill_id,) = {r[5] for r in runs}
        while not db.rows(
            "SELECT 1 FROM backfill WHERE id = ? AND completed_at IS NOT NULL", backfill_id
        ):
            assert time.time() < deadline, "the backfill was never marked complete"
            time.sleep(3)
        backfill_s = time.time() - started

        # the same dates again, reprocess none: nothing to do
        out = backfill(af, first, last, "none", MAX_ACTIVE_RUNS, conf)
        time.sleep(15)
        assert db.runs() == runs, out
        second = db.rows(
            "SELECT dag_run_id, exception_reason FROM backfill_dag_run WHERE backfill_id = ("
            "SELECT max(id) FROM backfill WHERE dag_id = ?)",
            DAG_ID,
        )
        assert len(second) == DAYS, second
        assert all(run_id is None and reason for run_id, reason in second), second
    finally:
        af.stop()

    # the run date is the data interval start (= logical date; the run id carries run_after,
    # one day later); one published partition per run
    assert [_ts(r[2]).date() for r in runs] == days
    spans = sorted((_ts(r[3]), _ts(r[4])) for r in runs)
    assert 1 <= most_running <= MAX_ACTIVE_RUNS, most_running
    assert _most_overlapping(spans) <= MAX_ACTIVE_RUNS, spans
    if DAYS > MAX_ACTIVE_RUNS:
        assert _most_overlapping(spans) == MAX_ACTIVE_RUNS, f"runs never overlapped: {spans}"
    assert published_partitions(warehouse)["recommendations"] == [f"ds={d}" for d in days]
    for d in days:
        cfg = json.loads((warehouse / "_runs" / f"ds={d}" / "ingest.json").read_text())["config"]
        assert cfg["ds"] == d.isoformat() and cfg["landing"] == str(landing)

    # every night equals a single in-process run of that date on a fresh warehouse
    for d in days:
        fresh = tmp_path / f"single-{d}"
        full_pipeline(spark, landing, fresh, d, skip=("quality",))
        tables = sorted(
            t
            for t, parts in published_partitions(fresh).items()
            if f"ds={d}" in parts and t not in HISTORY_TABLES
        )
        assert "recommendations" in tables
        ours, theirs = warehouse_hashes(fresh, d, tables), warehouse_hashes(warehouse, d, tables)
        assert ours == theirs, (d, sorted(t for t in tables if ours[t] != theirs[t]))
    total_s = time.time() - started
    print(f"\nbackfill of {DAYS} days through Airflow: {backfill_s:.0f}s; test: {total_s:.0f}s")
