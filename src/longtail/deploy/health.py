"""One try of each kind of health check declared in the topology: (passed, what was seen)."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

from longtail.deploy.client import AirflowClient, ApiError
from longtail.deploy.topology import HealthCheck

HTTP_TIMEOUT_S = 10.0
# a heartbeat this much older than the process start still counts (clock rounding)
HEARTBEAT_SLACK_S = 2.0


def _get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _ts(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def probe(
    check: HealthCheck, started_at: float | None = None, client: AirflowClient | None = None
) -> tuple[bool, str]:
    """One try of check. started_at: the process's start time (a heartbeat must be newer)."""
    try:
        return _probe(check, started_at, client)
    except (OSError, ValueError, ApiError, subprocess.SubprocessError) as exc:
        return False, f"{type(exc).__name__}: {exc}"


def _probe(
    check: HealthCheck, started_at: float | None, client: AirflowClient | None
) -> tuple[bool, str]:
    kind = check.kind
    if kind == "command":
        done = subprocess.run(list(check.argv), capture_output=True, text=True, timeout=20)
        out = (done.stdout + done.stderr).strip()[-300:]
        return done.returncode == 0, f"`{' '.join(check.argv)}` exit {done.returncode} {out}"
    if kind == "http":
        status, _ = _get_json(check.target)
        return status == 200, f"GET {check.target}: HTTP {status}"
    if kind == "airflow_component":
        status, body = _get_json(check.target)
        if status != 200 or not isinstance(body, dict):
            return False, f"GET {check.target}: HTTP {status}"
        part = body.get(check.expect) or {}
        beat = next((v for k, v in part.items() if k.endswith("heartbeat")), None)
        healthy = part.get("status") == "healthy"
        fresh = started_at is None or ((_ts(beat) or 0.0) >= started_at - HEARTBEAT_SLACK_S)
        return healthy and fresh, f"{check.expect}: {json.dumps(part)}"
    if kind == "spark_master":
        status, body = _get_json(check.target)
        state = body.get("status") if isinstance(body, dict) else None
        return status == 200 and state == "ALIVE", f"GET {check.target}: {status} status {state}"
    if kind == "spark_worker":
        status, body = _get_json(check.target)
        workers = body.get("workers", []) if isinstance(body, dict) else []
        ours = [
            w
            for w in workers
            if w.get("state") == "ALIVE"
            and str(w.get("webuiaddress", "")).rstrip("/").endswith(f":{check.expect}")
        ]
        alive = sum(1 for w in workers if w.get("state") == "ALIVE")
        return bool(ours), f"GET {check.target}: {alive} ALIVE worker(s) of {len(workers)}"
    if kind == "dag_parsed":
        if client is None:
            return False, "no admin credentials for the REST API"
        code, body = client.try_get(f"/api/v2/dags/{check.expect}")
        parsed = body.get("last_parsed_time") if isinstance(body, dict) else None
        # parsed by this dag-processor, not only known from an earlier run of the deployment
        fresh = started_at is None or (_ts(parsed) or 0.0) >= started_at - HEARTBEAT_SLACK_S
        return code == 200 and fresh, (
            f"GET /api/v2/dags/{check.expect}: HTTP {code}, last parsed {parsed}"
        )
    raise ValueError(f"unknown health check kind {kind!r}")
