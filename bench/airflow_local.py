"""Airflow as separate processes on this machine (SQLite, LocalExecutor): scheduler,
dag-processor and api-server, for backfills through the real scheduler.

Used by `make bench-backfill` (bench/backfill.py) and by the long backfill test
(tests/reliability/test_backfill.py). Each process runs in its own process group and is stopped
by PID (SIGTERM, then SIGKILL).
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
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
DAG_ID = "longtail_nightly"
# by import path, for AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS(_ASYNC); needs REPO on PYTHONPATH
SQLITE_CONNECT_ARGS = "bench.airflow_sqlite_args.CONNECT_ARGS"
PROCESSES = (
    ("dag-processor", ["dag-processor"]),
    ("scheduler", ["scheduler"]),
    ("api-server", ["api-server"]),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(
    home: Path, warehouse: Path, spark_conn: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """What every Airflow process started here gets: this process's environment less any Airflow
    or Longtail setting, a private Airflow home, the DAGs, the warehouse as the DAG's default,
    the Spark connection (local[2] unless given) and the Spark workers' settings."""
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
        AIRFLOW__CORE__PARALLELISM="2",
        AIRFLOW_CONN_LONGTAIL_SPARK=json.dumps(
            dict(spark_conn) if spark_conn else {"conn_type": "spark", "host": "local[2]"}
        ),
        LONGTAIL_RETRY_DELAY_S="1",
        LONGTAIL_WAREHOUSE=str(warehouse),  # the DAG's param default and its assets' URIs
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


def local_airflow_env(
    home: Path,
    landing: Path,
    warehouse: Path,
    port: int,
    spark_conn: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """`base_env` plus what a scheduler, dag-processor and api-server on one SQLite file need,
    and the landing as the DAG's default."""
    env = base_env(home, warehouse, spark_conn)
    env.update(
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
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
        # a longer SQLite busy timeout for the four processes sharing the DB file
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS=SQLITE_CONNECT_ARGS,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC=SQLITE_CONNECT_ARGS,
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
        LONGTAIL_LANDING=str(landing),  # the DAG's param default
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


def wait_until_parsed(db: Db, af: Airflow, deadline: float) -> None:
    while not db.rows("SELECT 1 FROM serialized_dag WHERE dag_id = ?", DAG_ID):
        af.check_alive()
        if time.time() > deadline:
            raise AssertionError(f"the DAG was never parsed:\n{af.tail('dag-processor')}")
        time.sleep(3)


def backfill(
    af: Airflow,
    first: date,
    last: date,
    reprocess: str,
    max_active_runs: int,
    conf: Mapping[str, Any],
) -> str:
    """`airflow backfill create` for the run dates first..last; its output."""
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
        str(max_active_runs),
        "--reprocess-behavior",
        reprocess,
        "--dag-run-conf",
        json.dumps(dict(conf)),
    )
    if proc.returncode != 0:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc.stdout


def wait_for_backfill(db: Db, af: Airflow, n: int, deadline: float) -> int:
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
