"""Where everything lives in a warehouse: one function per kind of path.

Stdlib only: the Airflow side (asset events, data docs, the consumer export) names the same files
as the Spark stages without importing Spark.

    <table>/ds=<ds>/                       a published partition (+ `_manifest.json`)
    <table>/_latest.json                   a published table's newest night
    _staging/<table>/ds=<ds>.attempt-<id>  one attempt's output awaiting audit (+ `.owner`)
    _trash/<table>/ds=<ds>/<owner>         a partition moved aside during a swap
    _txn/ds=<ds>/<owner>.json              the journal of a set publish under way
    _locks/<table>/ds=<ds>.lock            a partition's publish lock (`_latest.lock`: pointer)
    _locks/_leases/<key>/<id>.lease        a running stage's read lease on a night or the cache
    _locks/_retention/<key>.lock           retention removing a night or the cache
    _runs/ds=<ds>/<stage>.json             a stage's run record (`.failed.json`: its last failure)
    _runs/ds=<ds>/gates/<table>.json       a gate's result (`.html`: its rendered report)

Names starting with `_` are skipped by Spark, pyarrow and DuckDB: readers only see tables.
"""

from __future__ import annotations

import re
from datetime import date

from longtail.manifest import LATEST, MANIFEST

STAGING = "_staging"
TRASH = "_trash"
RUNS = "_runs"
LOCKS = "_locks"
JOURNALS = "_txn"
SUCCESS = "_SUCCESS"
# Beside a staged attempt's folder: the process that owns it (see staging.claim_staging).
OWNER_SUFFIX = ".owner"
ATTEMPT_INFIX = ".attempt-"
FAILED_SUFFIX = ".failed"
GATES = "gates"
# A read lease on the embedding cache (leases on a night use night_key(ds)).
CACHE_KEY = "embedding_cache"

_RUN_RECORD = re.compile(rf"/{RUNS}/ds=(\d{{4}}-\d{{2}}-\d{{2}})/((?:{GATES}/)?[^/]+)\.json$")


def _at(warehouse: str, *parts: str) -> str:
    return "/".join((warehouse.rstrip("/"), *parts))


def night_key(ds: date | str) -> str:
    """`ds=<YYYY-MM-DD>`: a night's partition folder, run-record folder and lease key."""
    return f"ds={ds.isoformat() if isinstance(ds, date) else ds}"


def table_path(warehouse: str, table: str, ds: date | str | None = None) -> str:
    return _at(warehouse, table) if ds is None else _at(warehouse, table, night_key(ds))


def latest_path(warehouse: str, table: str) -> str:
    return _at(warehouse, table, LATEST)


def manifest_path(partition: str) -> str:
    return f"{partition}/{MANIFEST}"


def staging_folder(warehouse: str, table: str) -> str:
    return _at(warehouse, STAGING, table)


def staging_path(warehouse: str, table: str, ds: date, attempt: str | None = None) -> str:
    """Where a stage's output waits for its audit; with attempt, a folder private to one attempt.

    A private folder per attempt means two runs of the same date (a retry racing a zombie, a
    backfill overlapping a manual run) never write into each other's staging, so what is published
    is always one attempt's complete output.
    """
    base = f"{staging_folder(warehouse, table)}/{night_key(ds)}"
    return base if attempt is None else f"{base}{ATTEMPT_INFIX}{attempt}"


def attempt_prefix(ds: date) -> str:
    """How the staging folders of ds's attempts start (names inside staging_folder)."""
    return f"{night_key(ds)}{ATTEMPT_INFIX}"


def owner_path(staged: str) -> str:
    return staged + OWNER_SUFFIX


def trash_path(warehouse: str, table: str, ds: date, owner: str | None = None) -> str:
    base = _at(warehouse, TRASH, table, night_key(ds))
    return base if owner is None else f"{base}/{owner}"


def journal_dir(warehouse: str, ds: date) -> str:
    return _at(warehouse, JOURNALS, night_key(ds))


def lock_path(warehouse: str, table: str, ds: date) -> str:
    return _at(warehouse, LOCKS, table, f"{night_key(ds)}.lock")


def latest_lock_path(warehouse: str, table: str) -> str:
    return _at(warehouse, LOCKS, table, "_latest.lock")


def lease_dir(warehouse: str, key: str) -> str:
    return _at(warehouse, LOCKS, "_leases", key)


def removal_lock_path(warehouse: str, key: str) -> str:
    return _at(warehouse, LOCKS, "_retention", f"{key}.lock")


def run_record_path(warehouse: str, ds: date | str, name: str) -> str:
    """`_runs/ds=<ds>/<name>.json`; ds and name may be globs (`*`) on the Airflow side."""
    return _at(warehouse, RUNS, night_key(ds), f"{name}.json")


def failure_record_name(stage: str) -> str:
    """A stage's failure record, `_runs/ds=<ds>/<stage>.failed.json`: the last attempt raised.

    Kept apart from `<stage>.json` (the last success, which downstream stages and the asset
    events read), so a failed re-run never hides what was published; removed when the stage
    next succeeds."""
    return f"{stage}{FAILED_SUFFIX}"


def gate_record_name(table: str) -> str:
    """Each audited table's validation result is kept per run: _runs/ds=<ds>/gates/<table>.json."""
    return f"{GATES}/{table}"


def gate_page_path(warehouse: str, ds: date, table: str) -> str:
    """The gate's rendered report, beside its record: _runs/ds=<ds>/gates/<table>.html."""
    return run_record_path(warehouse, ds, gate_record_name(table))[: -len(".json")] + ".html"


def parse_run_record_path(uri: str) -> tuple[str, str] | None:
    """(night, name) of a run record's path (name as run_record_path takes it); None otherwise."""
    m = _RUN_RECORD.search(uri)
    return None if m is None else (m.group(1), m.group(2))


def gate_table(name: str) -> str | None:
    """The table whose gate record a run-record name is (gate_record_name's inverse), or None."""
    prefix = f"{GATES}/"
    return name[len(prefix) :] if name.startswith(prefix) else None
