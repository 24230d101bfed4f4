"""`make bench-backfill`: what a backfill and a single night of the built-in sample cost.

- `sample_night_s`: one `make run` of the sample's last day (`longtail.airflow_run`, `airflow
  dags test`) on a fresh warehouse, its Spark session started by the run itself: what a user
  waits for after `make run` on a fresh clone, less the install; `sample_night` adds
  `next_night_s`, the day after on the session the first night left running.
- `backfill`: the last `--nights` days of the sample (7 by default) through the real scheduler:
  scheduler, dag-processor and api-server as separate processes (bench/airflow_local.py, SQLite,
  LocalExecutor), `airflow backfill create` with two runs at a time, the stages in one Spark
  session (started with the clock running), timed from the backfill's creation until its last
  run succeeded. `--spark-submit` times the same backfill with one driver per task.

Both go into `reports/scale/metrics.json` beside `make bench-scale`'s keys.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.airflow_local import (
    Airflow,
    Db,
    backfill,
    free_port,
    local_airflow_env,
    wait_for_backfill,
    wait_until_parsed,
)
from bench.scale import code_commit, machine, run_dag
from longtail.lastday import last_day
from longtail.session.client import SESSION_EXTRA, ensure_server, stop_server

REPO = Path(__file__).resolve().parents[1]
MASTER = "local[2]"
MAX_ACTIVE_RUNS = 2
TIMEOUT_S = 3 * 3600


def sample_night(landing: Path, work: Path) -> dict[str, Any]:
    """Wall seconds of `make run` of the landing's last day on a fresh warehouse, its Spark
    session started by the run (`wall_s`), then of the day after on the same warehouse and the
    session the first left running (`next_night_s`: no new events, every text cached)."""
    session = Path(os.environ.get("AIRFLOW_HOME", ".airflow")) / "session"
    stop_server(session)  # the night starts its own session, as on a fresh machine
    folder = work / "sample-night"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ds = date.fromisoformat(last_day(landing))
    next_ds = (ds + timedelta(days=1)).isoformat()
    try:
        wall, _ = run_dag(landing, folder / "warehouse", ds.isoformat(), folder / "run.log")
        again, _ = run_dag(landing, folder / "warehouse", next_ds, folder / "run-next.log")
    finally:
        stop_server(session)
    return {"wall_s": round(wall, 1), "next_night_s": round(again, 1), "commit": code_commit()}


def run_backfill(landing: Path, work: Path, nights: int, session: bool) -> dict[str, Any]:
    """A backfill of the landing's last `nights` days through a local scheduler."""
    folder = work / ("backfill" if session else "backfill-spark-submit")
    shutil.rmtree(folder, ignore_errors=True)
    home, warehouse = folder / "airflow", folder / "warehouse"
    home.mkdir(parents=True)
    last = date.fromisoformat(last_day(landing))
    first = last - timedelta(days=nights - 1)
    conn: dict[str, Any] = {"conn_type": "spark", "host": MASTER}
    if session:
        # the server is up before the connection names it; its start-up is timed below
        started = time.perf_counter()
        conn["extra"] = {SESSION_EXTRA: ensure_server(folder / "session", MASTER, idle_exit_s=0)}
        session_start_s = time.perf_counter() - started
    else:
        session_start_s = 0.0
    af = Airflow(home, local_airflow_env(home, landing, warehouse, free_port(), conn))
    migrate = af.cli("db", "migrate")
    if migrate.returncode != 0:
        raise RuntimeError(migrate.stderr[-3000:])
    db = Db(home / "airflow.db")
    try:
        af.start()
        deadline = time.time() + TIMEOUT_S
        wait_until_parsed(db, af, deadline)
        started = time.perf_counter()
        backfill(af, first, last, "completed", MAX_ACTIVE_RUNS, {})
        wait_for_backfill(db, af, nights, deadline)
        wall = time.perf_counter() - started + session_start_s
    finally:
        af.stop()
        stop_server(folder / "session")
    return {
        "nights": nights,
        "wall_s": round(wall, 1),
        "nights_per_hour": round(nights * 3600 / wall, 1),
        "first_ds": first.isoformat(),
        "last_ds": last.isoformat(),
        "max_active_runs": MAX_ACTIVE_RUNS,
        "spark": "session" if session else "spark-submit",
        "session_start_s": round(session_start_s, 1),
        "commit": code_commit(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--landing", default=str(REPO / "data" / "landing" / "sample"))
    parser.add_argument("--nights", type=int, default=7)
    parser.add_argument("--work-dir", default=str(REPO / "data" / "backfill"))
    parser.add_argument("--out", default=str(REPO / "reports" / "scale"))
    parser.add_argument("--spark-submit", action="store_true", help="one driver per task")
    parser.add_argument("--skip-sample-night", action="store_true")
    args = parser.parse_args(argv)
    landing, work = Path(args.landing).resolve(), Path(args.work_dir).resolve()
    path = Path(args.out) / "metrics.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    if not args.skip_sample_night:
        night = sample_night(landing, work)
        report["sample_night_s"] = night["wall_s"]
        report["sample_night"] = night
        print(f"[backfill] the sample's night: {json.dumps(night)}", flush=True)
    result = run_backfill(landing, work, args.nights, session=not args.spark_submit)
    result["machine"] = machine()
    key = "backfill" if not args.spark_submit else "backfill_spark_submit"
    report[key] = result
    print(f"[backfill] {json.dumps(result)}", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"[backfill] wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
