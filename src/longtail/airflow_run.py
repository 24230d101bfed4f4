"""`make run`: one nightly run through real Airflow (`airflow dags test`), with a clear verdict.

`airflow dags test` runs every task in this process tree without a scheduler. Its exit status
alone does not say whether the DAG run succeeded, so this also checks the run's final state in
the output and that the publish stage recorded this run.
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
    args = parser.parse_args(argv)

    conf = {
        "ds": args.ds,
        "landing": args.landing,
        "warehouse": args.warehouse,
        "top_n": args.top_n,
        "overrides": args.overrides,
    }
    home = Path(os.environ.get("AIRFLOW_HOME", ".airflow"))
    log_path = Path(args.log) if args.log else home / "logs" / f"make-run-{args.ds}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["airflow", "dags", "test", DAG_ID, args.ds, "-c", json.dumps(conf)]
    started = time.time()
    state = None
    reasons: list[str] = []
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
        out = json.loads(record.read_text())
        print(
            f"longtail: published {out['published']} "
            f"({out['counts']['rows']} rows) in {elapsed:.0f}s"
        )
        print(accounting_line(Path(args.warehouse), args.ds))
        return 0
    why = f" Reason: {reasons[0]}." if reasons else ""
    print(
        f"longtail: run for {args.ds} FAILED (exit {rc}, dag run state {state}); "
        f"nothing new was published.{why} Full log: {log_path}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
