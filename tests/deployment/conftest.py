"""One real deployment for the deployment and browser tests: `python -m longtail.deploy up`.

PostgreSQL, Airflow's api-server, scheduler, dag-processor and triggerer, a Spark standalone
master and worker, started from the project's own files in a runtime folder of their own (so a
developer's `make up` is left alone) on ports of their own. The landing is a tiny generated shop
whose history ends in 2011, years before today: the runs are a shop's own past, as backfills are.
At the end the deployment is brought down and nothing it started may still run.

By default the tests run two nights side by side: one triggered through the REST API and a
one-night backfill from the UI. The long variant (LONGTAIL_LONG_TESTS=1) runs six: the UI also
triggers a run and backfills two nights, and REST backfills two more.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from longtail.sample import SampleConfig, generate

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "longtail_nightly"
LAST_DAY = date(2011, 12, 9)
SAMPLE = SampleConfig(
    n_users=200, n_items=120, n_days=20, n_categories=6, seed=11, end_date=LAST_DAY.isoformat()
)
PORTS = {
    "LONGTAIL_PG_PORT": "55532",
    "LONGTAIL_AIRFLOW_PORT": "18080",
    "LONGTAIL_SPARK_MASTER_PORT": "17077",
    "LONGTAIL_SPARK_MASTER_UI_PORT": "18081",
    "LONGTAIL_SPARK_WORKER_UI_PORT": "18082",
    "LONGTAIL_SPARK_SESSION_PORT": "18083",
}
RUN_TIMEOUT_S = int(os.environ.get("LONGTAIL_DEPLOY_RUN_TIMEOUT_S", str(20 * 60)))
FINISHED = {"success", "failed"}


@dataclass
class Deployed:
    runtime: Path
    landing: Path
    warehouse: Path
    env: dict[str, str]
    api: Any  # longtail.deploy.client.AirflowClient
    ui_url: str
    username: str
    password: str
    spark_master_ui: str
    spark_worker_ui: str
    artifacts: Path

    def day(self, days_before_last: int) -> str:
        return (LAST_DAY - timedelta(days=days_before_last)).isoformat()

    def run_state(self, run_id: str) -> dict[str, Any]:
        return self.api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")

    def wait_for_runs(self, run_ids: list[str], timeout_s: float = RUN_TIMEOUT_S) -> dict[str, str]:
        """Poll until every run finished; their states (a failure names its failed tasks)."""
        deadline = time.monotonic() + timeout_s
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = {r: self.run_state(r)["state"] for r in run_ids}
            if all(s in FINISHED for s in states.values()):
                break
            time.sleep(5)
        for run_id, state in states.items():
            if state != "success":
                tis = self.api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
                bad = {
                    t["task_id"]: t["state"]
                    for t in tis["task_instances"]
                    if t["state"] not in ("success", "skipped")
                }
                logs = sorted((self.runtime / "airflow" / "logs").rglob("*.log"))
                pytest.fail(f"run {run_id} ended {state}; tasks {bad}; task logs {logs[-3:]}")
        return states


def no_backfill_running(deployed: Deployed, timeout_s: float = 300) -> None:
    """Wait until an earlier backfill of the DAG (another test's) is marked completed: Airflow
    runs one backfill of a DAG at a time."""
    deadline = time.monotonic() + timeout_s
    while True:
        backfills = deployed.api.get("/api/v2/backfills", {"dag_id": DAG_ID})["backfills"]
        running = [b["id"] for b in backfills if not b["completed_at"]]
        if not running:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"backfills {running} of {DAG_ID} still running after {timeout_s}s")
        time.sleep(5)


def _run_deploy(command: str, env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "longtail.deploy", command],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _started_by(runtime: Path) -> list[str]:
    """Processes whose command line or environment points into this runtime folder."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            env = proc.environ() if str(runtime) not in cmd else {}
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if str(runtime) in cmd or any(str(runtime) in v for v in env.values()):
            found.append(f"{proc.info['pid']}: {cmd[:160]}")
    return found


def _runtime_folder() -> Path:
    """The deployment's runtime folder: in the repo's ignored `.runtime/` when the postgres OS
    user (which runs the server when we are root) can reach it, else in the system temp folder
    (a checkout under a private home is not traversable by other users)."""
    inside = REPO / ".runtime" / "test-deploy"
    if os.geteuid() != 0 or all(os.stat(p).st_mode & 0o001 for p in inside.parents if p.exists()):
        return inside
    digest = hashlib.sha256(str(REPO).encode()).hexdigest()[:10]
    outside = Path(tempfile.gettempdir()) / f"longtail-test-deploy-{digest}"
    outside.parent.mkdir(parents=True, exist_ok=True)
    return outside


@pytest.fixture(scope="session")
def deployed() -> Iterator[Deployed]:
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs a Java runtime")
    runtime = _runtime_folder()
    if runtime.exists():
        _run_deploy("down", {**os.environ, "LONGTAIL_DEPLOY_DIR": str(runtime), **PORTS}, 300)
        shutil.rmtree(runtime)
    landing, warehouse = runtime / "landing", runtime / "warehouse"
    generate(landing, SAMPLE)
    artifacts = REPO / ".runtime" / "test-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **PORTS,
        "LONGTAIL_DEPLOY_DIR": str(runtime),
        "LONGTAIL_LANDING": str(landing),
        "LONGTAIL_WAREHOUSE": str(warehouse),
        "LONGTAIL_SPARK_WORKER_MEMORY": "4g",
        # only the runs the tests start: unpausing must not add the scheduler's latest interval
        "LONGTAIL_DEPLOY_SCHEDULED_RUNS": "false",
        # one core per stage: the tests' runs share the 2-core worker instead of queueing
        "LONGTAIL_SPARK_CORES_MAX": "1",
    }
    if os.environ.get("SPARK_SUBMIT_OPTS"):
        # make test's short-JVM options (the services do not inherit SPARK_* variables): for
        # every stage's driver and executors, through the deployment's Spark settings
        opts = os.environ["SPARK_SUBMIT_OPTS"]
        env["LONGTAIL_SPARK_CONF"] = json.dumps(
            {"spark.driver.extraJavaOptions": opts, "spark.executor.extraJavaOptions": opts}
        )
    t0 = time.monotonic()
    up = _run_deploy("up", env, 900)
    print(f"deploy up: {time.monotonic() - t0:.0f}s\n{up.stdout[-3000:]}")
    try:
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:]
        again = _run_deploy("up", env, 300)  # a second `up` is harmless
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        from longtail.deploy.client import AirflowClient

        creds_out = _run_deploy("credentials", env, 60)
        creds = json.loads(creds_out.stdout)
        api = AirflowClient(creds["url"], creds["username"], creds["password"])
        api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
        yield Deployed(
            runtime=runtime,
            landing=landing,
            warehouse=warehouse,
            env=env,
            api=api,
            ui_url=creds["url"],
            username=creds["username"],
            password=creds["password"],
            spark_master_ui=f"http://127.0.0.1:{PORTS['LONGTAIL_SPARK_MASTER_UI_PORT']}",
            spark_worker_ui=f"http://127.0.0.1:{PORTS['LONGTAIL_SPARK_WORKER_UI_PORT']}",
            artifacts=artifacts,
        )
    finally:
        for log in sorted((runtime / "logs").glob("*.log")):
            shutil.copy(log, artifacts / f"deploy-{log.name}")
        down = _run_deploy("down", env, 300)
        print(f"deploy down:\n{down.stdout[-2000:]}")
        assert down.returncode == 0, down.stdout[-2000:] + down.stderr[-2000:]
        left = _started_by(runtime)
        assert not left, f"still running after down: {left}"


@dataclass
class Triggered:
    started: datetime
    ds: str
    run_id: str


@pytest.fixture(scope="session")
def rest_triggered(deployed: Deployed) -> Triggered:
    """The night triggered through the REST API (day 0), submitted without waiting: whichever
    test asks first starts it, so it shares the cluster with the other test's runs."""
    ds = deployed.day(0)
    started = datetime.now(UTC)
    run = deployed.api.post(
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        {"logical_date": None, "conf": {"ds": ds}, "note": "deployment test"},
    )
    return Triggered(started, ds, run["dag_run_id"])


@pytest.fixture(scope="session")
def browser_page() -> Iterator[Any]:
    """A page of headless Chromium driven by Playwright: the system's Chromium (Debian's
    `chromium`, installed when missing and root; see longtail.deploy.browser), UTC, 1400x900."""
    from playwright.sync_api import sync_playwright

    from longtail.deploy.browser import CHROMIUM_ARGS, chromium_path

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": 1400, "height": 900}, timezone_id="UTC", locale="en-US"
        )
        context.set_default_timeout(60_000)  # a loaded 2-core machine renders slowly
        context.set_default_navigation_timeout(120_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
