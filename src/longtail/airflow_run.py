"""`make run`: one nightly run through real Airflow (`airflow dags test`), with a clear verdict.

`airflow dags test` runs every task in this process tree without a scheduler. Its exit status
alone does not say whether the DAG run succeeded, so this also checks the run's final state in
the output and that the publish stage recorded this run.

When this checkout's deployment is up (`make up`), the run goes through its api-server instead:
the scheduler runs it on the Spark cluster and it shows in the UI like any manual run.

The run date goes in as the `ds` param, not as the logical date: the run is recorded as started
now (Airflow's `dags test` sets a run's start to its logical date, which would show a 2011 run
as lasting fifteen years in the UI), and the DAG resolves ds from the param.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from longtail.errors import ERROR_PREFIX

DAG_ID = "longtail_nightly"
_STATE = re.compile(r"DagRun Finished: .*?state=(\w+)")
# The reason line a failed stage prints, as it appears inside Airflow's task log line.
_REASON = re.compile(re.escape(ERROR_PREFIX) + r" (.*?)(?:\s+\[airflow\.[^\]]*\].*)?$")


def accounting_line(warehouse: Path, ds: str) -> str:
    """The clean stage's row accounting for ds, as one line (what went where, and why)."""
    path = warehouse / "_runs" / f"ds={ds}" / "clean.json"
    if not path.exists():
        return "longtail: no clean record for this run"
    rec = json.loads(path.read_text())
    c, reasons = rec["counts"], rec.get("quarantine_reasons", {})
    why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
    return (
        f"longtail: events in {c['events_in']} = accepted {c['events_accepted']} + quarantined "
        f"{c['events_quarantined']} + after ds {c['events_deferred']}; items in {c['items_in']} = "
        f"accepted {c['items_accepted']} + quarantined {c['items_quarantined']} + after ds "
        f"{c['items_deferred']}. Quarantine reasons: {why or 'none'} "
        f"({warehouse}/quarantine/ds={ds}/)"
    )


def _report_published(record: Path, warehouse: Path, ds: str, elapsed: float) -> int:
    """The success lines, from the publish stage's run record."""
    out = json.loads(record.read_text())
    print(
        f"longtail: published {out['published']} ({out['counts']['rows']} rows) in {elapsed:.0f}s"
    )
    print(accounting_line(warehouse, ds))
    audiences = record.with_name("item_audiences.json")
    if audiences.is_file():
        c = json.loads(audiences.read_text())["counts"]
        print(
            f"longtail: item_audiences: {c['items']} products ({c['new_items']} new), "
            f"{c['rows']} rows ({warehouse}/item_audiences/ds={ds}/)"
        )
    return 0


def session_connection(home: Path, environ: dict[str, str]) -> dict[str, str]:
    """The Spark connection (as an AIRFLOW_CONN_* variable) with a session server's URL in its
    extra, starting the server if none runs for this Airflow home; {} when the connection is not
    given in the environment (then it lives in Airflow's database and is used as it is)."""
    from longtail.session.client import DEFAULT_IDLE_EXIT_S, SESSION_EXTRA, ensure_server

    var = "AIRFLOW_CONN_" + environ.get("LONGTAIL_SPARK_CONN_ID", "longtail_spark").upper()
    try:
        conn = json.loads(environ.get(var, ""))
    except ValueError:
        return {}
    if not isinstance(conn, dict) or not conn.get("host"):
        return {}
    extra = conn.get("extra") or {}
    extra = json.loads(extra) if isinstance(extra, str) else dict(extra)
    if extra.get(SESSION_EXTRA):
        return {}  # the connection already names a server
    idle = int(environ.get("LONGTAIL_SESSION_IDLE_EXIT_S", DEFAULT_IDLE_EXIT_S))
    t0 = time.time()
    # Not waited for: the session starts while Airflow does, and the first stage waits for it.
    url = ensure_server(
        home / "session", str(conn["host"]), idle_exit_s=idle, env=environ, wait=False
    )
    print(f"longtail: Spark session at {url} (answered in {time.time() - t0:.0f}s)", flush=True)
    return {var: json.dumps({**conn, "extra": {**extra, SESSION_EXTRA: url}})}


def _any_stage_ran(warehouse: Path, ds: str, since: float) -> bool:
    folder = warehouse / "_runs" / f"ds={ds}"
    return folder.is_dir() and any(p.stat().st_mtime >= since for p in folder.glob("*.json"))


def _deployment_client() -> Any | None:
    """The REST client of this checkout's deployment when its api-server runs, else None."""
    try:
        from longtail.deploy.manager import Deployment, status_rows

        dep = Deployment.load()
        alive = {r["service"] for r in status_rows(dep) if r["state"] == "alive"}
        if "airflow-api-server" not in alive:
            return None
        return dep.client()
    except Exception:  # no deployment here, or not readable: fall back to `dags test`
        return None


def _run_on_deployment(client: Any, conf: dict[str, Any], warehouse: Path) -> int:
    """Trigger through the api-server, wait, and give the same verdict as `dags test`."""
    ds = conf["ds"]
    dag = client.get(f"/api/v2/dags/{DAG_ID}")
    if dag.get("is_paused"):
        client.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
        print(f"longtail: unpaused {DAG_ID} in the deployment", flush=True)
    started = time.time()
    run = client.post(
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        {"logical_date": None, "conf": conf, "note": f"make run DS={ds}"},
    )
    run_id = run["dag_run_id"]
    print(f"longtail: triggered {run_id} on the deployment ({client.base_url})", flush=True)
    state = run["state"]
    while state not in ("success", "failed"):
        time.sleep(5)
        state = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
    record = warehouse / "_runs" / f"ds={ds}" / "publish.json"
    elapsed = time.time() - started
    if state == "success" and record.exists() and record.stat().st_mtime >= started:
        return _report_published(record, warehouse, ds, elapsed)
    tis = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
    failed = sorted(t["task_id"] for t in tis if t["state"] in ("failed", "upstream_failed"))
    why = (
        f"failed tasks {failed} (logs in the UI: Dag {DAG_ID}, run {run_id})"
        if failed
        else f"no stage ran for {ds}"
    )
    print(
        f"longtail: run for {ds} FAILED (dag run state {state}); nothing new was published. "
        f"Reason: {why}.",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ds", required=True)
    parser.add_argument("--landing", required=True)
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--top-n", type=int, default=20)
    parser.add_argument("--overrides", type=json.loads, default={})
    parser.add_argument(
        "--log", default=None, help="full Airflow log (default: under AIRFLOW_HOME)"
    )
    parser.add_argument(
        "--session",
        choices=("auto", "off"),
        default=os.environ.get("LONGTAIL_SESSION", "auto"),
        help="auto: `dags test` runs the stages in a long-lived Spark session (started on demand, "
        "it exits after LONGTAIL_SESSION_IDLE_EXIT_S idle seconds, default 900); off: one "
        "spark-submit driver per stage",
    )
    parser.add_argument(
        "--via",
        choices=("auto", "deployment", "dags-test"),
        default="auto",
        help="auto: the deployment's REST API when `make up` is running, else `airflow dags test`",
    )
    args = parser.parse_args(argv)

    conf = {
        "ds": args.ds,
        "landing": args.landing,
        "warehouse": args.warehouse,
        "top_n": args.top_n,
        "overrides": args.overrides,
    }
    client = None if args.via == "dags-test" else _deployment_client()
    if args.via == "deployment" and client is None:
        print("longtail: no deployment is running here (start one with `make up`)", file=sys.stderr)
        return 1
    if client is not None:
        return _run_on_deployment(client, conf, Path(args.warehouse))
    home = Path(os.environ.get("AIRFLOW_HOME", ".airflow"))
    log_path = Path(args.log) if args.log else home / "logs" / f"make-run-{args.ds}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # the airflow CLI without the interpreter's teardown at exit (longtail.airflow_cli: 1.8 s)
    cmd = [sys.executable, "-m", "longtail.airflow_cli", "dags", "test", DAG_ID]
    cmd += ["-c", json.dumps(conf)]
    started = time.time()
    env = dict(os.environ)
    if args.session == "auto":
        env.update(session_connection(home, env))
    state = None
    reasons: list[str] = []
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            m = _STATE.search(line)
            if m:
                state = m.group(1)
            reason = _REASON.search(line.rstrip())
            if reason and reason.group(1) not in reasons:
                reasons.append(reason.group(1))
                print(f"longtail: {reason.group(1)}", flush=True)
        rc = proc.wait()
    record = Path(args.warehouse) / "_runs" / f"ds={args.ds}" / "publish.json"
    fresh = record.exists() and record.stat().st_mtime >= started
    elapsed = time.time() - started
    if rc == 0 and state == "success" and fresh:
        return _report_published(record, Path(args.warehouse), args.ds, elapsed)
    if reasons:
        why = f" Reason: {reasons[0]}."
    elif not _any_stage_ran(Path(args.warehouse), args.ds, started):
        why = f" Reason: no stage ran for {args.ds} (no stage recorded a run)."
    elif rc == 0 and state == "success":
        why = " Reason: the run ended without the publish stage recording it."
    else:
        why = ""
    print(
        f"longtail: run for {args.ds} FAILED (exit {rc}, dag run state {state}); "
        f"nothing new was published.{why} Full log: {log_path}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
