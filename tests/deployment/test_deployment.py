"""The nightly DAG on the real deployment, driven through Airflow's REST API.

Runs on PostgreSQL-backed Airflow services with every stage run by the session server on the
Spark standalone master, unchanged DAG code. Checks what an operator would: the run succeeds,
every stage ran in the session's application, whose executors run on the worker, the published
partition meets the output contract (checked with DuckDB, hashlib and pyarrow, not the
pipeline's own code), and (long variant) a two-day backfill created through the
API publishes both nights.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from conftest import DAG_ID, PORTS, RUN_TIMEOUT_S, Deployed, Triggered, no_backfill_running
from longtail import registry
from longtail.manifest import published_schema

pytestmark = [pytest.mark.slow, pytest.mark.deployment]

TOP_N = 20  # the DAG's default


def _json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def check_published(partition: Path, ds: str) -> None:
    """The reading contract, with tools that are not the pipeline's."""
    manifest = json.loads((partition / "_manifest.json").read_text())
    assert manifest["ds"] == ds
    files = sorted(partition.rglob("*.parquet"))
    assert files, partition
    listed = {f["path"].lstrip("/") for f in manifest["files"]}
    assert listed == {str(p.relative_to(partition)) for p in files}
    for entry in manifest["files"]:
        data = (partition / entry["path"].lstrip("/")).read_bytes()
        assert len(data) == entry["bytes"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    glob = str(partition / "**" / "*.parquet")
    rows, users, bad_ranks = duckdb.sql(
        f"""
        select count(*), count(distinct user_id),
               count(*) filter (where rank < 1 or rank > {TOP_N})
        from read_parquet('{glob}')
        """
    ).fetchone()
    assert rows == manifest["rows"] and users == manifest["users"] and rows > 0
    assert bad_ranks == 0
    dupes = duckdb.sql(
        f"""select count(*) from (select user_id, rank from read_parquet('{glob}')
            group by all having count(*) > 1)"""
    ).fetchone()[0]
    assert dupes == 0
    schema = pq.read_schema(files[0])
    declared = [c["name"] for c in published_schema("recommendations")["columns"]]
    assert [n for n in schema.names if n in declared] == declared


@dataclass
class RestRuns:
    started: datetime
    triggered: str
    backfill_days: tuple[str, str]
    backfill_runs: list[str]


@pytest.fixture(scope="module")
def rest_runs(deployed: Deployed, rest_triggered: Triggered, long_tests: bool) -> RestRuns:
    """The night triggered for day 0 and, in the long variant, a two-day backfill of days
    2..1 submitted alongside it through the REST API (so they share the cluster), waited for."""
    backfill_runs: list[str] = []
    first, last = deployed.day(2), deployed.day(1)
    if long_tests:
        no_backfill_running(deployed)  # one backfill of a DAG at a time (the browser test's)
        backfill = deployed.api.post(
            "/api/v2/backfills",
            {
                "dag_id": DAG_ID,
                "from_date": f"{first}T00:00:00Z",
                "to_date": f"{last}T23:59:59Z",
                "max_active_runs": 2,
                "reprocess_behavior": "failed",
                "run_backwards": False,
                "dag_run_conf": {},
            },
        )
        assert backfill["id"]
        backfill_runs = _backfill_runs(deployed, (first, last))
    runs = [rest_triggered.run_id, *backfill_runs]
    deployed.wait_for_runs(runs, timeout_s=RUN_TIMEOUT_S * len(runs))
    return RestRuns(rest_triggered.started, rest_triggered.run_id, (first, last), backfill_runs)


def test_triggered_run_succeeds_on_the_cluster(deployed: Deployed, rest_runs: RestRuns) -> None:
    ds = deployed.day(0)
    finished = deployed.run_state(rest_runs.triggered)
    assert finished["state"] == "success"
    # What the UI shows: the run started now and took minutes, not years.
    run_start = datetime.fromisoformat(finished["start_date"])
    assert run_start >= rest_runs.started - timedelta(minutes=1)
    assert datetime.fromisoformat(finished["end_date"]) - run_start < timedelta(hours=2)

    partition = deployed.warehouse / "recommendations" / f"ds={ds}"
    check_published(partition, ds)
    record = json.loads((deployed.warehouse / "_runs" / f"ds={ds}" / "publish.json").read_text())
    assert record["config"]["ds"] == ds


@pytest.mark.parametrize("factors", ["x", 64.5])
def test_the_api_refuses_a_mistyped_override(deployed: Deployed, factors: object) -> None:
    """The overrides param's schema (the stage configs') is checked when a run is triggered:
    HTTP 400, the run refused before any task starts."""
    body = deployed.api.request(
        "POST",
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        {"logical_date": None, "conf": {"overrides": {"train_als": {"factors": factors}}}},
        ok=(400,),
    )
    assert "overrides" in json.dumps(body), body


def test_every_stage_ran_on_the_spark_cluster(deployed: Deployed, rest_runs: RestRuns) -> None:
    """Each stage's run record names the application it ran in: the session server's, one
    long-lived application of the standalone master whose executors run on the worker."""
    master = _json(f"{deployed.spark_master_ui}/json/")
    assert [w["state"] for w in master["workers"]] == ["ALIVE"]
    worker_id = master["workers"][0]["id"]
    url = f"spark://127.0.0.1:{PORTS['LONGTAIL_SPARK_MASTER_PORT']}"
    # every night this module ran: the triggered one, and the backfill's in the long variant
    days = [deployed.day(0), *(rest_runs.backfill_days if rest_runs.backfill_runs else ())]
    used: dict[str, set[str]] = {}
    for ds in days:
        for name in registry.NAMES:
            path = deployed.warehouse / "_runs" / f"ds={ds}" / f"{name}.json"
            record = json.loads(path.read_text())
            assert record["spark"]["master"] == url, (name, record["spark"])
            assert record["spark_jobs"]["total"] > 0, name
            used.setdefault(record["spark"]["app_id"], set()).add(name)
    assert len(used) == 1, used  # one session for every stage of every night
    (app_id,) = used
    session = [a for a in master["activeapps"] if a["id"] == app_id]
    assert session and session[0]["name"] == "longtail-session", master["activeapps"]
    worker = _json(f"{deployed.spark_worker_ui}/json/")
    assert worker["id"] == worker_id
    assert app_id in {e["appid"] for e in worker["executors"]}, worker["executors"]


@pytest.mark.long  # submits a two-night backfill through REST
def test_backfill_through_the_api_publishes_both_nights(
    deployed: Deployed, rest_runs: RestRuns
) -> None:
    states = {r: deployed.run_state(r) for r in rest_runs.backfill_runs}
    assert all(s["state"] == "success" for s in states.values())
    assert all(s["run_type"] == "backfill" for s in states.values())
    for ds in rest_runs.backfill_days:
        check_published(deployed.warehouse / "recommendations" / f"ds={ds}", ds)
    latest = json.loads((deployed.warehouse / "recommendations" / "_latest.json").read_text())
    assert latest["ds"] >= deployed.day(0)  # a backfill of older nights never moves it back


def _backfill_runs(deployed: Deployed, days: tuple[str, ...]) -> list[str]:
    """The backfill's runs: run type backfill, data interval starting on the given days (the
    run listing carries no backfill id)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        page = deployed.api.get(
            f"/api/v2/dags/{DAG_ID}/dagRuns", {"run_type": "backfill", "limit": 100}
        )
        runs = {
            r["data_interval_start"][:10]: r["dag_run_id"]
            for r in page["dag_runs"]
            if (r.get("data_interval_start") or "")[:10] in days
        }
        if set(runs) == set(days):
            return [runs[d] for d in days]
        time.sleep(3)
    pytest.fail(f"the backfill created no runs for {days}")
