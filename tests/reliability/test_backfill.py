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

import contextlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from reliability_kit import (
    PIPELINE_OVERRIDES,
    TOP_N,
    full_pipeline,
    published_partitions,
    warehouse_hashes,
)

from longtail.sample import SampleConfig, generate

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.long,
]

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "longtail_nightly"
SAMPLE = SampleConfig(n_users=200, n_items=120, n_days=12, n_categories=6, seed=5)
DAYS = int(os.environ.get("LONGTAIL_BACKFILL_DAYS", "3"))
MAX_ACTIVE_RUNS = 2
TIMEOUT_S = int(os.environ.get("LONGTAIL_BACKFILL_TIMEOUT_S", str(50 * 60)))
HISTORY_TABLES = {"quality_metrics"}  # depends on earlier nights, not only on the night's inputs
PROCESSES = (
    ("dag-processor", ["dag-processor"]),
    ("scheduler", ["scheduler"]),
    ("api-server", ["api-server"]),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(home: Path, landing: Path, warehouse: Path, port: int) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "LONGTAIL_"))
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM="3",
        # backfill runs only start for an unpaused DAG ...
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        # ... and without this, unpausing it would also schedule today's nightly run
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__WORKERS="1",
        # every component must sign and check task tokens with the same keys
        AIRFLOW__API__SECRET_KEY=secrets.token_hex(16),
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW_CONN_LONGTAIL_SPARK='{"conn_type": "spark", "host": "local[2]"}',
        # a longer SQLite busy timeout for the four processes sharing the DB file
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS="airflow_sqlite_args.CONNECT_ARGS",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC="airflow_sqlite_args.CONNECT_ARGS",
        PYTHONPATH=os.pathsep.join(
            p for p in (str(Path(__file__).parent), env.get("PYTHONPATH", "")) if p
        ),
        LONGTAIL_RETRY_DELAY_S="1",
        LONGTAIL_LANDING=str(landing),  # the DAG's param defaults
        LONGTAIL_WAREHOUSE=str(warehouse),
        LONGTAIL_DRIVER_MEMORY="1g",
        PATH=venv_bin + os.pathsep + env.get("PATH", ""),
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SPARK_LOCAL_IP="127.0.0.1",
        GX_ANALYTICS_ENABLED="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OPENBLAS_NUM_THREADS="1",
    )
    return env


class Airflow:
    """The three long-running Airflow processes, each in its own process group."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env
        self.procs: dict[str, subprocess.Popen] = {}

    def cli(self, *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["airflow", *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self) -> None:
        for name, args in PROCESSES:
            log = open(self.home / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
            self.procs[name] = subprocess.Popen(
                ["airflow", *args],
                env=self.env,
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(
                    f"airflow {name} exited with {proc.returncode}:\n{self.tail(name)}"
                )

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.home / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    def stop(self, grace_s: float = 20) -> None:
        """SIGTERM each process group, SIGKILL whatever is left after grace_s (by PID)."""
        family: list[psutil.Process] = []
        for proc in self.procs.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                family += [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(True)]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(family, timeout=grace_s)
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for p in alive:  # children that left the group (task runners, Spark JVMs)
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        for proc in self.procs.values():
            proc.wait(timeout=30)


class Db:
    """Read-only look at the Airflow metadata DB (SQLite), cheaper than a CLI call per poll."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str, *args: Any) -> list[tuple]:
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def runs(self) -> list[tuple]:
        return self.rows(
            "SELECT run_id, state, data_interval_start, start_date, end_date, backfill_id "
            "FROM dag_run WHERE dag_id = ? AND run_type = 'backfill' ORDER BY data_interval_start",
            DAG_ID,
        )


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


def _backfill(af: Airflow, first: date, last: date, reprocess: str) -> str:
    conf = {"top_n": TOP_N, "overrides": PIPELINE_OVERRIDES}
    proc = af.cli(
        "backfill",
        "create",
        "--dag-id",
        DAG_ID,
        "--from-date",
        first.isoformat(),
        # compared with logical dates (ds 01:30 UTC): ds = last needs last 01:30, not last 00:00
        "--to-date",
        f"{last.isoformat()}T01:30:00+00:00",
        "--max-active-runs",
        str(MAX_ACTIVE_RUNS),
        "--reprocess-behavior",
        reprocess,
        "--dag-run-conf",
        json.dumps(conf),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _wait_for(db: Db, af: Airflow, n: int, deadline: float) -> int:
    """Poll until n backfill runs succeeded; returns the most runs seen running at once."""
    most_running = 0
    while True:
        af.check_alive()
        runs = db.runs()
        states = [r[1] for r in runs]
        most_running = max(most_running, states.count("running"))
        if "failed" in states:
            raise AssertionError(f"a backfill run failed: {runs}\n{af.tail('scheduler')}")
        if len(runs) == n and states.count("success") == n:
            return most_running
        if time.time() > deadline:
            raise AssertionError(f"timed out; runs: {runs}\n{af.tail('scheduler')}")
        time.sleep(5)


def test_backfill_through_airflow(spark: Any, tmp_path: Path) -> None:
    started = time.time()
    landing, warehouse, home = tmp_path / "landing", tmp_path / "warehouse", tmp_path / "airflow"
    home.mkdir()
    generate(landing, SAMPLE)
    last = date.fromisoformat(SAMPLE.end_date)
    first = last - timedelta(days=DAYS - 1)
    days = [first + timedelta(days=i) for i in range(DAYS)]

    af = Airflow(home, _env(home, landing, warehouse, _free_port()))
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

        _backfill(af, first, last, "completed")
        most_running = _wait_for(db, af, DAYS, deadline)
        runs = db.runs()
        (backfill_id,) = {r[5] for r in runs}
        while not db.rows(
            "SELECT 1 FROM backfill WHERE id = ? AND completed_at IS NOT NULL", backfill_id
        ):
            assert time.time() < deadline, "the backfill was never marked complete"
            time.sleep(3)
        backfill_s = time.time() - started

        # the same dates again, reprocess none: nothing to do
        out = _backfill(af, first, last, "none")
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
