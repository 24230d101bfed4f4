"""Warehouse layout and write-audit-publish through Hadoop's FileSystem API.

Going through Hadoop (not os/shutil) means the same code publishes to a local disk, HDFS or an
object store. Readers only ever see a complete partition: output is written to a private staging
folder (names starting with `_` are skipped by Spark, pyarrow and DuckDB), audited, then moved into
place; an earlier partition for the same date is moved aside first and deleted only after the swap.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from pyspark.sql import DataFrame, SparkSession

LOCK_STALE_S = 600
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

    def list_files(self, uri: str) -> list[str]:
        """Every data file below uri, sorted; hidden (`.`) and metadata (`_`) entries skipped."""
        if not self.exists(uri):
            return []
        out = []
        it = self._fs.listFiles(self._path(uri), True)
        while it.hasNext():
            status = it.next()
            path = status.getPath()
            rel = path.toString()[len(self._fs.makeQualified(self._path(uri)).toString()) :]
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
            except Exception:  # released between the two calls: free now
                age_s = None
            if age_s is not None and age_s < LOCK_STALE_S:
                return False
            if age_s is not None:
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


def write_record(spark: SparkSession, warehouse: str, ds: date, name: str, record: dict) -> None:
    """Run records (config, counts, gate results) live beside the data, one JSON per stage."""
    uri = run_record_path(warehouse, ds, name)
    Fs(spark, uri).write_text(uri, json.dumps(record, indent=2, sort_keys=True, default=str))


def read_record(spark: SparkSession, warehouse: str, ds: date, name: str) -> dict | None:
    uri = run_record_path(warehouse, ds, name)
    fs = Fs(spark, uri)
    return json.loads(fs.read_text(uri)) if fs.exists(uri) else None


def write_staging(
    df: DataFrame, warehouse: str, table: str, ds: date, attempt: str | None = None
) -> str:
    """Write a stage's output to its staging folder, replacing an older attempt's."""
    uri = staging_path(warehouse, table, ds, attempt)
    df.write.mode("overwrite").parquet(uri)
    return uri


def discard_staged(
    spark: SparkSession, warehouse: str, table: str, ds: date, attempt: str | None = None
) -> None:
    """Remove a failed attempt's staging folder (a no-op once it has been published)."""
    uri = staging_path(warehouse, table, ds, attempt)
    try:
        fs = Fs(spark, uri)
        if fs.exists(uri):
            fs.delete(uri)
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


def publish_staged(
    spark: SparkSession,
    warehouse: str,
    table: str,
    ds: date,
    audit: Callable[[DataFrame], dict] | None = None,
    attempt: str | None = None,
) -> dict:
    """Audit the staged partition, then swap it into place atomically.

    audit raises on failure, in which case nothing moves. The swap holds a per-partition lock so two
    runs of the same date cannot both publish; the earlier partition is moved aside, not deleted,
    until the new one is in place.
    """
    staged = staging_path(warehouse, table, ds, attempt)
    fs = Fs(spark, staged)
    _check_staged(fs, staged, table, ds)
    result = audit_staged(spark, warehouse, table, ds, audit, attempt) if audit else {}
    target = table_path(warehouse, table, ds)
    lock = f"{warehouse}/_locks/{table}/ds={ds.isoformat()}.lock"
    owner = uuid.uuid4().hex
    if not fs.try_lock(lock, owner):
        raise PublishError(
            f"another run is publishing {table} ds={ds} (lock {lock}); retry when it has finished"
        )
    try:
        _check_staged(fs, staged, table, ds)  # still complete now that we hold the lock
        trash = f"{warehouse}/_trash/{table}/ds={ds.isoformat()}/{owner}"
        had_old = fs.exists(target)
        if had_old:
            fs.rename(target, trash)
        try:
            fs.rename(staged, target)
        except Exception:
            if fs.exists(target):  # half a move (object stores copy file by file): not data
                fs.delete(target)
            if had_old:
                fs.rename(trash, target)
            raise
        if had_old:
            fs.delete(trash)
    finally:
        fs.delete(lock)
    return result


def write_audit_publish(
    df: DataFrame,
    warehouse: str,
    table: str,
    ds: date,
    audit: Callable[[DataFrame], dict] | None = None,
) -> dict:
    """Stage df in a folder private to this attempt, audit it, publish it; on failure, clean up."""
    attempt = uuid.uuid4().hex[:12]
    try:
        write_staging(df, warehouse, table, ds, attempt)
        return publish_staged(df.sparkSession, warehouse, table, ds, audit, attempt)
    finally:
        discard_staged(df.sparkSession, warehouse, table, ds, attempt)


def read_table(spark: SparkSession, warehouse: str, table: str, ds: date) -> DataFrame:
    uri = table_path(warehouse, table, ds)
    if not Fs(spark, uri).exists(f"{uri}/_SUCCESS"):
        raise FileNotFoundError(f"{table} for ds={ds} has not been published: {uri}")
    return spark.read.parquet(uri)
