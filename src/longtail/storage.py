"""Warehouse layout and write-audit-publish through Hadoop's FileSystem API.

Going through Hadoop (not os/shutil) means the same code publishes to a local disk, HDFS or an
object store. Readers only ever see a complete partition: output is written to a private staging
folder (names starting with `_` are skipped by Spark, pyarrow and DuckDB), audited, then moved into
place; an earlier partition for the same date is moved aside first and deleted only after the swap.
A stage that writes several tables publishes them as one set (`publish_staged_set`): a journal
written before the first move lets a failure, or the next run after a crash, undo a half-done set.
Published tables (tables.PUBLISHED) also get a `_manifest.json` in each partition and a
`_latest.json` per table (see manifest.py). Stages hold a read lease on the nights they read, so
retention never deletes what a running job reads (`read_lease`, `removal_lock`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from longtail import manifest as mf

LOCK_STALE_S = 600
# A read lease is a running stage's: live while its process is (on this host), else for this long
# (longer than the DAG's execution_timeout of 3 hours).
LEASE_STALE_S = 4 * 3600
# How long a publisher waits for another to finish moving a table's `_latest.json`: long enough
# to take over the lock of a publisher that died on another host (LOCK_STALE_S).
LATEST_WAIT_S = LOCK_STALE_S + 60
log = logging.getLogger("longtail")


class PublishError(RuntimeError):
    """Publishing could not complete; the previously published data is unchanged."""


def table_path(warehouse: str, table: str, ds: date | None = None) -> str:
    base = f"{warehouse}/{table}"
    return base if ds is None else f"{base}/ds={ds.isoformat()}"


def staging_path(warehouse: str, table: str, ds: date, attempt: str | None = None) -> str:
    """Where a stage's output waits for its audit; with attempt, a folder private to one attempt.

    A private folder per attempt means two runs of the same date (a retry racing a zombie, a
    backfill overlapping a manual run) never write into each other's staging, so what is published
    is always one attempt's complete output.
    """
    base = f"{warehouse}/_staging/{table}/ds={ds.isoformat()}"
    return base if attempt is None else f"{base}.attempt-{attempt}"


def run_record_path(warehouse: str, ds: date, name: str) -> str:
    return f"{warehouse}/_runs/ds={ds.isoformat()}/{name}.json"


class Fs:
    """Thin wrapper over org.apache.hadoop.fs.FileSystem for the few calls we need."""

    def __init__(self, spark: SparkSession, uri: str) -> None:
        self._jvm = spark._jvm  # type: ignore[attr-defined]
        self._gateway = spark.sparkContext._gateway  # type: ignore[attr-defined]
        self._conf = spark._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
        self._fs = self._path(uri).getFileSystem(self._conf)

    def _path(self, uri: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(uri)

    def exists(self, uri: str) -> bool:
        return bool(self._fs.exists(self._path(uri)))

    def delete(self, uri: str) -> None:
        self._fs.delete(self._path(uri), True)

    def mkdirs(self, uri: str) -> None:
        self._fs.mkdirs(self._path(uri))

    def rename(self, src: str, dst: str) -> None:
        self.mkdirs(dst.rsplit("/", 1)[0])
        if not self._fs.rename(self._path(src), self._path(dst)):
            raise PublishError(f"could not move {src} to {dst}")

    def qualify(self, uri: str) -> str:
        """uri as the FileSystem names its entries (scheme and authority added)."""
        return str(self._fs.makeQualified(self._path(uri)).toString())

    def list_files(self, uri: str) -> list[str]:
        """Every data file below uri, sorted; hidden (`.`) and metadata (`_`) entries skipped."""
        if not self.exists(uri):
            return []
        out = []
        it = self._fs.listFiles(self._path(uri), True)
        while it.hasNext():
            status = it.next()
            path = status.getPath()
            rel = path.toString()[len(self.qualify(uri)) :]
            if any(part.startswith(("_", ".")) for part in rel.split("/") if part):
                continue
            out.append(path.toString())
        return sorted(out)

    def list_dirs(self, uri: str) -> list[str]:
        if not self.exists(uri):
            return []
        return sorted(
            s.getPath().getName() for s in self._fs.listStatus(self._path(uri)) if s.isDirectory()
        )

    def list_names(self, uri: str) -> list[str]:
        """Names of the entries directly below uri (files and folders), sorted."""
        if not self.exists(uri):
            return []
        return sorted(s.getPath().getName() for s in self._fs.listStatus(self._path(uri)))

    def write_text(self, uri: str, text: str) -> None:
        """Write via a temporary name and rename, so a reader never sees half a file."""
        tmp = f"{uri}.{uuid.uuid4().hex}.tmp"
        self.mkdirs(uri.rsplit("/", 1)[0])
        out = self._fs.create(self._path(tmp), True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()
        if self.exists(uri):
            self.delete(uri)
        self.rename(tmp, uri)

    def replace_text(self, uri: str, text: str) -> None:
        """Write uri so that a reader sees the old text or the new one, never neither.

        write_text deletes, then renames; this renames over the old file in one step: os.replace
        on a local disk, FileContext's rename with OVERWRITE elsewhere (atomic on HDFS; on S3 a
        rename is a copy, as everywhere in this module).
        """
        folder, name = uri.rsplit("/", 1)
        tmp_name = f".{name}.{uuid.uuid4().hex}.tmp"
        if self._fs.getScheme() == "file":
            local = self.local_path(uri)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            tmp = os.path.join(os.path.dirname(local), tmp_name)
            with open(tmp, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, local)
            return
        tmp = f"{folder}/{tmp_name}"
        self.mkdirs(folder)
        out = self._fs.create(self._path(tmp), True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()
        fs_api = self._jvm.org.apache.hadoop.fs
        context = fs_api.FileContext.getFileContext(self._path(uri).toUri(), self._conf)
        options = self._gateway.new_array(fs_api.Options.Rename, 1)
        options[0] = fs_api.Options.Rename.OVERWRITE
        context.rename(self._path(tmp), self._path(uri), options)

    def local_path(self, uri: str) -> str:
        return str(self._fs.pathToFile(self._path(uri)).getPath())

    def size(self, uri: str) -> int:
        return int(self._fs.getFileStatus(self._path(uri)).getLen())

    def age_s(self, uri: str) -> float:
        """Seconds since uri was last modified."""
        return time.time() - self._fs.getFileStatus(self._path(uri)).getModificationTime() / 1000

    def sha256(self, uri: str) -> str:
        """SHA-256 of a file's bytes, read in the JVM (commons-codec ships with Spark)."""
        stream = self._fs.open(self._path(uri))
        try:
            return str(self._jvm.org.apache.commons.codec.digest.DigestUtils.sha256Hex(stream))
        finally:
            stream.close()

    def read_text(self, uri: str) -> str:
        stream = self._fs.open(self._path(uri))
        try:
            reader = self._jvm.java.io.BufferedReader(
                self._jvm.java.io.InputStreamReader(stream, "UTF-8")
            )
            lines = []
            line = reader.readLine()
            while line is not None:
                lines.append(line)
                line = reader.readLine()
            return "\n".join(lines)
        finally:
            stream.close()

    def try_lock(self, uri: str, owner: str) -> bool:
        """Atomic create-if-absent; a lock older than LOCK_STALE_S is a crashed writer's."""
        path = self._path(uri)
        if self._fs.exists(path):
            try:
                age_s = time.time() - self._fs.getFileStatus(path).getModificationTime() / 1000
                holder = self.read_text(uri)
            except Exception:  # released between the calls: free now
                age_s, holder = None, ""
            if age_s is not None and age_s < LOCK_STALE_S and not _holder_is_dead(holder):
                return False
            if age_s is not None:
                try:  # only the lock judged stale: another taker may have replaced it meanwhile
                    if self.read_text(uri) != holder:
                        return False
                except Exception:  # gone already
                    pass
                else:
                    self._fs.delete(path, False)
        if self._fs.getScheme() == "file":
            # Hadoop's local create(overwrite=False) checks, then opens: two writers can both
            # pass the check. O_EXCL makes create-if-absent atomic on a local disk.
            local = self._fs.pathToFile(path).getPath()
            os.makedirs(os.path.dirname(local), exist_ok=True)
            try:
                fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(owner)
            return True
        try:
            out = self._fs.create(path, False)
        except Exception:  # another writer created it first
            return False
        out.write(bytearray(owner.encode("utf-8")))
        out.close()
        return True


def lock_holder() -> str:
    """What a lock file says about its holder: enough to tell, on this host, that it has died."""
    return json.dumps({"id": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid()})


def _holder_is_dead(holder: str) -> bool:
    """True when the lock was taken by a process on this host that no longer exists.

    A task killed in the middle of a publish (OOM, a worker restart) leaves its lock behind; its
    retry on the same host need not wait LOCK_STALE_S for it to go stale.
    """
    try:
        info = json.loads(holder)
        if info.get("host") != socket.gethostname() or int(info["pid"]) == os.getpid():
            return False
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return True
    except Exception:  # not ours to judge (another host, another format, no permission)
        return False
    return False


def write_record(spark: SparkSession, warehouse: str, ds: date, name: str, record: dict) -> None:
    """Run records (config, counts, gate results) live beside the data, one JSON per stage."""
    uri = run_record_path(warehouse, ds, name)
    Fs(spark, uri).write_text(uri, json.dumps(record, indent=2, sort_keys=True, default=str))


def read_record(spark: SparkSession, warehouse: str, ds: date, name: str) -> dict | None:
    uri = run_record_path(warehouse, ds, name)
    fs = Fs(spark, uri)
    return json.loads(fs.read_text(uri)) if fs.exists(uri) else None


FAILED_SUFFIX = ".failed"


def failure_record_name(stage: str) -> str:
    """A stage's failure record, `_runs/ds=<ds>/<stage>.failed.json`: the last attempt raised.

    Kept apart from `<stage>.json` (the last success, which downstream stages and the asset
    events read), so a failed re-run never hides what was published; removed when the stage
    next succeeds."""
    return f"{stage}{FAILED_SUFFIX}"


def write_failure(
    spark: SparkSession, warehouse: str, ds: date, stage: str, exc: BaseException, permanent: bool
) -> None:
    """Record why `stage` failed for ds: the data-docs site shows the night and its reason even
    when the stage failed before its first gate (a landing without a required column, a rules
    file that does not parse)."""
    record = {
        "stage": stage,
        "error": type(exc).__name__,
        "message": " ".join(str(exc).split()),
        "permanent": permanent,
        "failed_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    write_record(spark, warehouse, ds, failure_record_name(stage), record)


def clear_failure(spark: SparkSession, warehouse: str, ds: date, stage: str) -> None:
    uri = run_record_path(warehouse, ds, failure_record_name(stage))
    fs = Fs(spark, uri)
    if fs.exists(uri):
        fs.delete(uri)


def write_staging(
    df: DataFrame, warehouse: str, table: str, ds: date, attempt: str | None = None
) -> str:
    """Write a stage's output to its staging folder, replacing an older attempt's."""
    uri = staging_path(warehouse, table, ds, attempt)
    if attempt is not None:
        claim_staging(Fs(df.sparkSession, uri), warehouse, table, ds, attempt)
    df.write.mode("overwrite").parquet(uri)
    return uri


_OWNER = ".owner"


def claim_staging(fs: Fs, warehouse: str, table: str, ds: date, attempt: str) -> None:
    """Mark an attempt's staging folder as this process's, after sweeping dead processes' ones.

    A stage killed outright (no cleanup code runs) leaves its staging folder, perhaps with a
    Spark `_temporary` in it; the next attempt on the same host removes it. Folders without an
    owner mark (handed over to a later stage, see release_staging) are never swept.
    """
    folder = f"{warehouse}/_staging/{table}"
    prefix = f"ds={ds.isoformat()}.attempt-"
    for name in fs.list_names(folder):
        if name.startswith(prefix) and name.endswith(_OWNER):
            marker = f"{folder}/{name}"
            try:
                dead = _holder_is_dead(fs.read_text(marker))
            except Exception:  # removed meanwhile by its owner
                continue
            if dead:
                log.warning("removing %s, staged by a process that died", marker[: -len(_OWNER)])
                fs.delete(marker[: -len(_OWNER)])
                fs.delete(marker)
    fs.write_text(staging_path(warehouse, table, ds, attempt) + _OWNER, lock_holder())


def release_staging(
    spark: SparkSession, warehouse: str, table: str, ds: date, attempt: str
) -> None:
    """Hand a complete staged attempt over to a later stage (it outlives this process)."""
    uri = staging_path(warehouse, table, ds, attempt) + _OWNER
    Fs(spark, uri).delete(uri)


def discard_staged(
    spark: SparkSession, warehouse: str, table: str, ds: date, attempt: str | None = None
) -> None:
    """Remove a failed attempt's staging folder (a no-op once it has been published)."""
    uri = staging_path(warehouse, table, ds, attempt)
    try:
        fs = Fs(spark, uri)
        for path in (uri, uri + _OWNER):
            if fs.exists(path):
                fs.delete(path)
    except Exception:  # cleanup must never hide the error that got us here
        log.warning("could not remove %s", uri, exc_info=True)


def _check_staged(fs: Fs, staged: str, table: str, ds: date) -> None:
    if not fs.exists(f"{staged}/_SUCCESS"):
        raise PublishError(f"nothing staged for {table} ds={ds}: {staged}/_SUCCESS is missing")
    if fs.exists(f"{staged}/_temporary"):
        raise PublishError(
            f"staged {table} ds={ds} is still being written by another run ({staged}/_temporary)"
        )


def gate_record_name(table: str) -> str:
    """Each audited table's validation result is kept per run: _runs/ds=<ds>/gates/<table>.json."""
    return f"gates/{table}"


# An audit may hand over a rendered report (e.g. GX data docs) under this key of its result, or
# as this attribute of the exception it raises; it is kept beside the JSON as <table>.html.
DATA_DOCS_HTML = "data_docs_html"


def audit_staged(
    spark: SparkSession,
    warehouse: str,
    table: str,
    ds: date,
    audit: Callable[[DataFrame], dict],
    attempt: str | None = None,
) -> dict:
    """Run audit on the staged partition; record its result (pass or fail), re-raise a failure."""
    staged = staging_path(warehouse, table, ds, attempt)
    _check_staged(Fs(spark, staged), staged, table, ds)
    record: dict[str, Any] = {"table": table, "ds": ds.isoformat()}
    try:
        result = audit(spark.read.parquet(staged))
    except Exception as exc:
        record.update(success=False, error=f"{type(exc).__name__}: {exc}")
        if isinstance(getattr(exc, "result", None), dict):
            record["result"] = exc.result  # type: ignore[attr-defined]
        _write_gate_record(spark, warehouse, ds, table, record, getattr(exc, DATA_DOCS_HTML, None))
        raise
    html = result.pop(DATA_DOCS_HTML, None) if isinstance(result, dict) else None
    record.update(success=True, result=result)
    _write_gate_record(spark, warehouse, ds, table, record, html)
    return result


def _write_gate_record(
    spark: SparkSession, warehouse: str, ds: date, table: str, record: dict, html: str | None
) -> None:
    try:
        write_record(spark, warehouse, ds, gate_record_name(table), record)
        if html:
            uri = run_record_path(warehouse, ds, gate_record_name(table))[: -len(".json")] + ".html"
            Fs(spark, uri).write_text(uri, html)
    except Exception:  # never let bookkeeping mask the gate's own outcome
        log.warning("could not record the gate result of %s ds=%s", table, ds, exc_info=True)


# Key of a publish result that holds the summary of the manifest written (published tables).
MANIFEST_KEY = "manifest"


def _with_manifest(result: dict, summary: dict | None) -> dict:
    return result if summary is None else {**result, MANIFEST_KEY: summary}


def publish_staged(
    spark: SparkSession,
    warehouse: str,
    table: str,
    ds: date,
    audit: Callable[[DataFrame], dict] | None = None,
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


def _lock_path(warehouse: str, table: str, ds: date) -> str:
    return f"{warehouse}/_locks/{table}/ds={ds.isoformat()}.lock"


def _trash_path(warehouse: str, table: str, ds: date, owner: str | None = None) -> str:
    base = f"{warehouse}/_trash/{table}/ds={ds.isoformat()}"
    return base if owner is None else f"{base}/{owner}"


def _journal_dir(warehouse: str, ds: date) -> str:
    return f"{warehouse}/_txn/ds={ds.isoformat()}"


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
            lock = _lock_path(warehouse, table, ds)
            if not fs.try_lock(lock, holder):
                raise PublishError(
                    f"another run is publishing {table} ds={ds} (lock {lock}); "
                    "retry when it has finished"
                )
            held.append(lock)
        _undo_interrupted(fs, warehouse, tables, ds)
        for table in tables:  # still complete now that we hold the locks
            staged = staging_path(warehouse, table, ds, attempt)
            _check_staged(fs, staged, table, ds)
        docs = {
            t: _write_manifest(spark, fs, warehouse, t, ds, attempt, manifests[t])
            for t in tables
            if t in manifests
        }
        had_old = {t: fs.exists(table_path(warehouse, t, ds)) for t in tables}
        journal = f"{_journal_dir(warehouse, ds)}/{owner}.json"
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
                fs.delete(_trash_path(warehouse, table, ds, owner))
            fs.delete(staging_path(warehouse, table, ds, attempt) + _OWNER)
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
    data = spark.read.parquet(staged)
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
        table=table, ds=ds, rows=data.count(), files=files, run_id=mf.current_run_id(), **fields
    )
    fs.write_text(f"{staged}/{mf.MANIFEST}", json.dumps(doc, indent=2, sort_keys=True))
    return doc


def _latest_lock(warehouse: str, table: str) -> str:
    return f"{warehouse}/_locks/{table}/_latest.lock"


def _advance_latest(fs: Fs, warehouse: str, table: str, ds: date, doc: dict[str, Any]) -> None:
    """Point `<table>/_latest.json` at ds unless it already names a later night."""
    lock, holder = _latest_lock(warehouse, table), lock_holder()
    deadline = time.time() + LATEST_WAIT_S
    while not fs.try_lock(lock, holder):
        if time.time() > deadline:
            raise PublishError(f"could not take {lock} to advance {table}'s latest pointer")
        time.sleep(0.5)
    try:
        uri = f"{table_path(warehouse, table)}/{mf.LATEST}"
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


def read_latest(spark: SparkSession, warehouse: str, table: str) -> dict[str, Any] | None:
    """A published table's `_latest.json` (its newest published ds); None before any publish."""
    uri = f"{table_path(warehouse, table)}/{mf.LATEST}"
    return read_latest_doc(Fs(spark, uri), uri)


def _swap_in(
    fs: Fs, warehouse: str, table: str, ds: date, attempt: str | None, owner: str, had_old: bool
) -> None:
    target = table_path(warehouse, table, ds)
    if had_old:
        fs.rename(target, _trash_path(warehouse, table, ds, owner))
    fs.rename(staging_path(warehouse, table, ds, attempt), target)


def _undo(
    fs: Fs, warehouse: str, tables: Sequence[str], ds: date, owner: str, had_old: dict[str, bool]
) -> None:
    """Put back what a set publish moved: its new partitions go, the earlier ones return."""
    for table in reversed(tables):
        target = table_path(warehouse, table, ds)
        trash = _trash_path(warehouse, table, ds, owner)
        if had_old.get(table, False) and not fs.exists(trash):
            continue  # never moved aside: the published partition is still the earlier one
        if fs.exists(target):  # this set's partition, or half of one (object stores copy)
            fs.delete(target)
        if had_old.get(table, False):
            fs.rename(trash, target)


def _undo_interrupted(fs: Fs, warehouse: str, tables: Sequence[str], ds: date) -> None:
    """Undo set publishes of these tables that died half-way (their journal is still there)."""
    folder = _journal_dir(warehouse, ds)
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
        for entry in fs.list_dirs(_trash_path(warehouse, table, ds)):
            trash = _trash_path(warehouse, table, ds, entry)
            if fs.exists(target):
                fs.delete(trash)
            else:  # never expected: keep the data visible rather than lose it
                fs.rename(trash, target)


def write_audit_publish(
    df: DataFrame,
    warehouse: str,
    table: str,
    ds: date,
    audit: Callable[[DataFrame], dict] | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> dict:
    """Stage df in a folder private to this attempt, audit it, publish it; on failure, clean up.

    manifest: as for publish_staged (published tables).
    """
    manifests = {table: manifest} if manifest is not None else None
    return write_audit_publish_set({table: (df, audit)}, warehouse, ds, manifests)[table]


def write_audit_publish_set(
    frames: dict[str, tuple[DataFrame, Callable[[DataFrame], dict] | None]],
    warehouse: str,
    ds: date,
    manifests: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict]:
    """write_audit_publish for tables that belong together: all audited before any is published."""
    attempt = uuid.uuid4().hex[:12]
    spark = next(iter(frames.values()))[0].sparkSession
    try:
        for table, (df, _) in frames.items():
            write_staging(df, warehouse, table, ds, attempt)
        results = {
            table: audit_staged(spark, warehouse, table, ds, audit, attempt) if audit else {}
            for table, (_, audit) in frames.items()
        }
        written = publish_staged_set(spark, warehouse, list(frames), ds, attempt, manifests)
        return {t: _with_manifest(r, written.get(t)) for t, r in results.items()}
    finally:
        for table in frames:
            discard_staged(spark, warehouse, table, ds, attempt)


def read_table(spark: SparkSession, warehouse: str, table: str, ds: date) -> DataFrame:
    uri = table_path(warehouse, table, ds)
    if not Fs(spark, uri).exists(f"{uri}/_SUCCESS"):
        raise FileNotFoundError(f"{table} for ds={ds} has not been published: {uri}")
    return spark.read.parquet(uri)


# --------------------------------------------------------------------------- leases (retention)
#
# A stage holds a read lease on every night it reads for as long as it runs; retention takes a
# removal lock on a night (or the embedding cache) and deletes nothing while a live lease exists.
# Each side writes its own file first and looks for the other's second, so at least one of them
# sees the other: either the stage stops before reading ("retention is removing ...", retried
# like any lock) or retention leaves the night alone.

CACHE_KEY = "embedding_cache"


def night_key(ds: date) -> str:
    return f"ds={ds.isoformat()}"


def _lease_dir(warehouse: str, key: str) -> str:
    return f"{warehouse}/_locks/_leases/{key}"


def _removal_lock_path(warehouse: str, key: str) -> str:
    return f"{warehouse}/_locks/_retention/{key}.lock"


def _is_live(fs: Fs, uri: str, stale_s: float) -> bool:
    """A lock or lease file that exists, is younger than stale_s and whose holder still runs."""
    try:
        return fs.age_s(uri) < stale_s and not _holder_is_dead(fs.read_text(uri))
    except Exception:  # removed meanwhile by its owner
        return False


@contextmanager
def read_lease(spark: SparkSession, warehouse: str, key: str) -> Iterator[None]:
    """Hold a read lease on key (night_key(ds) or CACHE_KEY) while the block runs."""
    fs = Fs(spark, warehouse)
    leases_held(fs, warehouse, key)  # sweeps the leases of killed stages (a retry's predecessor)
    lease = f"{_lease_dir(warehouse, key)}/{uuid.uuid4().hex}.lease"
    fs.write_text(lease, lock_holder())
    try:
        if _is_live(fs, _removal_lock_path(warehouse, key), LOCK_STALE_S):
            raise PublishError(
                f"retention is removing {key} in {warehouse}; retry when it has finished"
            )
        yield
    finally:
        try:
            fs.delete(lease)
        except Exception:  # never hide the block's own outcome; a dead holder's lease expires
            log.warning("could not remove the read lease %s", lease, exc_info=True)


def leases_held(fs: Fs, warehouse: str, key: str) -> bool:
    """Is any live read lease held on key? Leases of dead processes are removed on the way."""
    folder = _lease_dir(warehouse, key)
    live = False
    for name in fs.list_names(folder):
        if not name.endswith(".lease"):
            continue
        uri = f"{folder}/{name}"
        if _is_live(fs, uri, LEASE_STALE_S):
            live = True
        elif fs.exists(uri):
            fs.delete(uri)
    return live


@contextmanager
def removal_lock(spark: SparkSession, warehouse: str, key: str) -> Iterator[bool]:
    """True when key may be removed now (no lease, no other remover); locks it meanwhile."""
    fs = Fs(spark, warehouse)
    lock = _removal_lock_path(warehouse, key)
    if not fs.try_lock(lock, lock_holder()):
        yield False
        return
    try:
        yield not leases_held(fs, warehouse, key)
    finally:
        fs.delete(lock)


def remove_partition(spark: SparkSession, warehouse: str, table: str, ds: date) -> bool:
    """Delete a published partition (retention): under its publish lock, moved aside in one rename
    (readers see it whole or not at all), then deleted. False when a publisher holds the lock."""
    fs = Fs(spark, warehouse)
    lock = _lock_path(warehouse, table, ds)
    if not fs.try_lock(lock, lock_holder()):
        return False
    try:
        aside = _trash_path(warehouse, table, ds, f"expired-{uuid.uuid4().hex}")
        fs.rename(table_path(warehouse, table, ds), aside)
        fs.delete(aside)
        return True
    finally:
        fs.delete(lock)
