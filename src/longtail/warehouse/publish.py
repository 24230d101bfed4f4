"""Write-audit-publish: staged output is audited, then swapped into place, one set at a time.

Readers only ever see a complete partition: output is written to a private staging folder
(`staging`), audited, then moved into place; an earlier partition for the same date is moved aside
first and deleted only after the swap. A stage that writes several tables publishes them as one set
(`publish_staged_set`): a journal written before the first move lets a failure, or the next run
after a crash, undo a half-done set. Published tables (tables.PUBLISHED) also get a
`_manifest.json` in each partition and a `_latest.json` per table (see manifest.py).

Every stage publishes through here: `write_audit_publish_set` (with hooks for what ingest and clean
need), `stage_for_later` + `publish_staged` when one process stages and another publishes (score
-> publish), `models.publish_model` for model files.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from longtail import manifest as mf
from longtail.warehouse.fs import Fs, PublishError
from longtail.warehouse.layout import (
    SUCCESS,
    journal_dir,
    latest_lock_path,
    latest_path,
    lock_path,
    manifest_path,
    owner_path,
    staging_path,
    table_path,
    trash_path,
)
from longtail.warehouse.leases import LOCK_STALE_S, lock_holder, try_lock
from longtail.warehouse.reads import count_rows, read_parquet
from longtail.warehouse.records import DATA_DOCS_HTML, write_gate_record
from longtail.warehouse.staging import check_staged, staging_attempt, write_staging

# How long a publisher waits for another to finish moving a table's `_latest.json`: long enough
# to take over the lock of a publisher that died on another host (LOCK_STALE_S).
LATEST_WAIT_S = LOCK_STALE_S + 60
log = logging.getLogger("longtail")
# What audits a staged table: its result (recorded, returned), or an exception (a failed gate).
Audit = Callable[[DataFrame], dict]


def audit_staged(
    spark: SparkSession,
    warehouse: str,
    table: str,
    ds: date,
    audit: Audit,
    attempt: str | None = None,
) -> dict:
    """Run audit on the staged partition; record its result (pass or fail), re-raise a failure."""
    staged = staging_path(warehouse, table, ds, attempt)
    check_staged(Fs(spark, staged), staged, table, ds)
    record: dict[str, Any] = {"table": table, "ds": ds.isoformat()}
    try:
        result = audit(read_parquet(spark, staged))
    except Exception as exc:
        record.update(success=False, error=f"{type(exc).__name__}: {exc}")
        if isinstance(getattr(exc, "result", None), dict):
            record["result"] = exc.result  # type: ignore[attr-defined]
        write_gate_record(spark, warehouse, ds, table, record, getattr(exc, DATA_DOCS_HTML, None))
        raise
    html = result.pop(DATA_DOCS_HTML, None) if isinstance(result, dict) else None
    record.update(success=True, result=result)
    write_gate_record(spark, warehouse, ds, table, record, html)
    return result


# Key of a publish result that holds the summary of the manifest written (published tables).
MANIFEST_KEY = "manifest"


def _with_manifest(result: dict, summary: dict | None) -> dict:
    return result if summary is None else {**result, MANIFEST_KEY: summary}


def publish_staged(
    spark: SparkSession,
    warehouse: str,
    table: str,
    ds: date,
    audit: Audit | None = None,
    attempt: str | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> dict:
    """Audit the staged partition, then swap it into place atomically.

    audit raises on failure, in which case nothing moves. The swap holds a per-partition lock so two
    runs of the same date cannot both publish; the earlier partition is moved aside, not deleted,
    until the new one is in place. With manifest (users, top_n, model_version of a published
    table), the partition gets its `_manifest.json` and the table its `_latest.json`; the result
    then holds the manifest's summary under MANIFEST_KEY.
    """
    # audit_staged and publish_staged_set each check that the staged output is complete
    result = audit_staged(spark, warehouse, table, ds, audit, attempt) if audit else {}
    manifests = {table: manifest} if manifest is not None else None
    written = publish_staged_set(spark, warehouse, [table], ds, attempt, manifests)
    return _with_manifest(result, written.get(table))


def publish_staged_set(
    spark: SparkSession,
    warehouse: str,
    tables: Sequence[str],
    ds: date,
    attempt: str | None = None,
    manifests: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict]:
    """Swap several already audited, staged tables into place as one unit.

    Takes every table's partition lock (in name order, so two publishers cannot deadlock), then for
    each table moves the published partition aside and the staged one in. A journal naming the set
    is written before the first move and removed after the last: if a move fails, the moves done so
    far are undone here; if the process dies half-way, the next publisher of these tables undoes
    them from the journal before it starts (`_undo_interrupted`). Either way the earlier partitions
    come back and no reader is left with half of a set for longer than the crash lasts.

    Tables named in manifests get their `_manifest.json` written into the staged partition before
    the first move (so it is never visible without one) and their `_latest.json` advanced after
    the last; returns the manifests' summaries.
    """
    tables = sorted(set(tables))
    manifests = manifests or {}
    written: dict[str, dict] = {}
    fs = Fs(spark, warehouse)
    owner = uuid.uuid4().hex
    holder = lock_holder()
    held: list[str] = []
    try:
        for table in tables:
            lock = lock_path(warehouse, table, ds)
            if not try_lock(fs, lock, holder):
                raise PublishError(
                    f"another run is publishing {table} ds={ds} (lock {lock}); "
                    "retry when it has finished"
                )
            held.append(lock)
        _undo_interrupted(fs, warehouse, tables, ds)
        for table in tables:  # still complete now that we hold the locks
            staged = staging_path(warehouse, table, ds, attempt)
            check_staged(fs, staged, table, ds)
        docs = {
            t: _write_manifest(spark, fs, warehouse, t, ds, attempt, manifests[t])
            for t in tables
            if t in manifests
        }
        had_old = {t: fs.exists(table_path(warehouse, t, ds)) for t in tables}
        journal = f"{journal_dir(warehouse, ds)}/{owner}.json"
        fs.write_text(journal, json.dumps({"owner": owner, "had_old": had_old}, sort_keys=True))
        moved: list[str] = []
        try:
            for table in tables:
                moved.append(table)
                _swap_in(fs, warehouse, table, ds, attempt, owner, had_old[table])
        except BaseException:
            _undo(fs, warehouse, moved, ds, owner, had_old)
            fs.delete(journal)
            raise
        fs.delete(journal)  # committed: from here on the new set stays
        for table in tables:
            if had_old[table]:
                fs.delete(trash_path(warehouse, table, ds, owner))
            fs.delete(owner_path(staging_path(warehouse, table, ds, attempt)))
        for table, doc in docs.items():
            path = table_path(warehouse, table, ds)
            _advance_latest(fs, warehouse, table, ds, mf.latest_document(doc, path))
            written[table] = mf.summary(doc, path)
    finally:
        for lock in held:
            fs.delete(lock)
    return written


def _write_manifest(
    spark: SparkSession,
    fs: Fs,
    warehouse: str,
    table: str,
    ds: date,
    attempt: str | None,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    """Check the staged partition against the table's published schema; describe it in a manifest.

    Rows are counted and files hashed here, from what is staged, not taken from the stage's word.
    """
    staged = staging_path(warehouse, table, ds, attempt)
    data = read_parquet(spark, staged)
    mf.check_columns(
        table,
        [
            (f.name, mf.SPARK_TO_CONTRACT.get(f.dataType.simpleString(), f.dataType.simpleString()))
            for f in data.schema.fields
        ],
    )
    root = fs.qualify(staged) + "/"
    files = [
        {"path": uri[len(root) :], "bytes": fs.size(uri), "sha256": fs.sha256(uri)}
        for uri in fs.list_files(staged)
    ]
    doc = mf.manifest_document(
        table=table,
        ds=ds,
        rows=count_rows(spark, staged),
        files=files,
        run_id=mf.current_run_id(),
        **fields,
    )
    fs.write_text(manifest_path(staged), json.dumps(doc, indent=2, sort_keys=True))
    return doc


def _advance_latest(fs: Fs, warehouse: str, table: str, ds: date, doc: dict[str, Any]) -> None:
    """Point `<table>/_latest.json` at ds unless it already names a later night."""
    lock, holder = latest_lock_path(warehouse, table), lock_holder()
    deadline = time.time() + LATEST_WAIT_S
    while not try_lock(fs, lock, holder):
        if time.time() > deadline:
            raise PublishError(f"could not take {lock} to advance {table}'s latest pointer")
        time.sleep(0.5)
    try:
        uri = latest_path(warehouse, table)
        current = read_latest_doc(fs, uri)
        if mf.advances(current, ds):
            fs.replace_text(uri, json.dumps(doc, indent=2, sort_keys=True))
    finally:
        fs.delete(lock)


def read_latest_doc(fs: Fs, uri: str) -> dict[str, Any] | None:
    if not fs.exists(uri):
        return None
    try:
        return json.loads(fs.read_text(uri))
    except (ValueError, KeyError):  # unreadable: the next publish replaces it
        log.warning("ignoring an unreadable %s", uri)
        return None


def _swap_in(
    fs: Fs, warehouse: str, table: str, ds: date, attempt: str | None, owner: str, had_old: bool
) -> None:
    target = table_path(warehouse, table, ds)
    if had_old:
        fs.rename(target, trash_path(warehouse, table, ds, owner))
    fs.rename(staging_path(warehouse, table, ds, attempt), target)


def _undo(
    fs: Fs, warehouse: str, tables: Sequence[str], ds: date, owner: str, had_old: dict[str, bool]
) -> None:
    """Put back what a set publish moved: its new partitions go, the earlier ones return."""
    for table in reversed(tables):
        target = table_path(warehouse, table, ds)
        trash = trash_path(warehouse, table, ds, owner)
        if had_old.get(table, False) and not fs.exists(trash):
            continue  # never moved aside: the published partition is still the earlier one
        if fs.exists(target):  # this set's partition, or half of one (object stores copy)
            fs.delete(target)
        if had_old.get(table, False):
            fs.rename(trash, target)


def _undo_interrupted(fs: Fs, warehouse: str, tables: Sequence[str], ds: date) -> None:
    """Undo set publishes of these tables that died half-way (their journal is still there)."""
    folder = journal_dir(warehouse, ds)
    for name in fs.list_names(folder):
        if not name.endswith(".json"):
            continue
        try:
            journal = json.loads(fs.read_text(f"{folder}/{name}"))
        except Exception:  # a journal cut short by a crash: its write came before any move
            fs.delete(f"{folder}/{name}")
            continue
        had_old = {str(k): bool(v) for k, v in journal["had_old"].items()}
        if not set(had_old) & set(tables):
            continue
        if not set(had_old) <= set(tables):
            raise PublishError(
                f"an interrupted publish of {sorted(had_old)} ds={ds} ({folder}/{name}) must be "
                f"undone by the stage that writes all of them before {sorted(tables)} can publish"
            )
        log.warning("undoing an interrupted publish of %s ds=%s", sorted(had_old), ds)
        _undo(fs, warehouse, sorted(had_old), ds, journal["owner"], had_old)
        fs.delete(f"{folder}/{name}")
    for table in tables:  # left by a publish that committed, then died while tidying up
        target = table_path(warehouse, table, ds)
        for entry in fs.list_dirs(trash_path(warehouse, table, ds)):
            trash = trash_path(warehouse, table, ds, entry)
            if fs.exists(target):
                fs.delete(trash)
            else:  # never expected: keep the data visible rather than lose it
                fs.rename(trash, target)


def write_audit_publish(
    df: DataFrame,
    warehouse: str,
    table: str,
    ds: date,
    audit: Audit | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> dict:
    """Stage df in a folder private to this attempt, audit it, publish it; on failure, clean up.

    manifest: as for publish_staged (published tables).
    """
    manifests = {table: manifest} if manifest is not None else None
    return write_audit_publish_set({table: (df, audit)}, warehouse, ds, manifests)[table]


def write_audit_publish_set(
    frames: Mapping[str, tuple[DataFrame, Audit | None]],
    warehouse: str,
    ds: date,
    manifests: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    attempt: str | None = None,
    explain_write_error: Callable[[Exception], Exception | None] | None = None,
    before_audit: Callable[[Mapping[str, DataFrame]], None] | None = None,
) -> dict[str, dict]:
    """write_audit_publish for tables that belong together: all audited before any is published.

    Every table is staged, then every audit runs, then the set is published; any failure leaves
    every table as it was and this attempt's staging removed. Hooks for stages that need more:
    - attempt: stage under this attempt id (a caller that stages scratch tables of its own under
      it removes those, see staging.staging_attempt); a new one otherwise.
    - explain_write_error: a clearer exception for one raised while staging (None keeps the
      original), raised from it: ingest names the landing file that could not be read.
    - before_audit: called with every table's staged output, read back, once all are staged and
      before any audit; what it raises stops the publish: clean's row accounting.
    """
    spark = next(iter(frames.values()))[0].sparkSession
    with staging_attempt(spark, warehouse, list(frames), ds, attempt) as attempt:
        for table, (df, _) in frames.items():
            try:
                write_staging(df, warehouse, table, ds, attempt)
            except Exception as exc:
                explained = explain_write_error(exc) if explain_write_error else None
                if explained is None:
                    raise
                raise explained from exc
        if before_audit is not None:
            before_audit(
                {t: read_parquet(spark, staging_path(warehouse, t, ds, attempt)) for t in frames}
            )
        results = {
            table: audit_staged(spark, warehouse, table, ds, audit, attempt) if audit else {}
            for table, (_, audit) in frames.items()
        }
        written = publish_staged_set(spark, warehouse, list(frames), ds, attempt, manifests)
        return {t: _with_manifest(r, written.get(t)) for t, r in results.items()}


def _published(spark: SparkSession, warehouse: str, table: str, ds: date) -> str:
    uri = table_path(warehouse, table, ds)
    if not Fs(spark, uri).exists(f"{uri}/{SUCCESS}"):
        raise FileNotFoundError(f"{table} for ds={ds} has not been published: {uri}")
    return uri


def read_table(spark: SparkSession, warehouse: str, table: str, ds: date) -> DataFrame:
    return read_parquet(spark, _published(spark, warehouse, table, ds))


def table_rows(spark: SparkSession, warehouse: str, table: str, ds: date) -> int:
    """read_table(...).count(), from the files' footers where it can (warehouse.reads)."""
    return count_rows(spark, _published(spark, warehouse, table, ds))


def remove_partition(spark: SparkSession, warehouse: str, table: str, ds: date) -> bool:
    """Delete a published partition (retention): under its publish lock, moved aside in one rename
    (readers see it whole or not at all), then deleted. False when a publisher holds the lock."""
    fs = Fs(spark, warehouse)
    lock = lock_path(warehouse, table, ds)
    if not try_lock(fs, lock, lock_holder()):
        return False
    try:
        aside = trash_path(warehouse, table, ds, f"expired-{uuid.uuid4().hex}")
        fs.rename(table_path(warehouse, table, ds), aside)
        fs.delete(aside)
        return True
    finally:
        fs.delete(lock)
