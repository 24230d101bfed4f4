"""Warehouse layout and write-audit-publish through Hadoop's FileSystem API.

Going through Hadoop (not os/shutil) means the same code publishes to a local disk, HDFS or an
object store. Readers only ever see a complete partition: output is written to a private staging
folder (names starting with `_` are skipped by Spark, pyarrow and DuckDB), audited, then moved into
place; an earlier partition for the same date is moved aside first and deleted only after the swap.
A stage that writes several tables publishes them as one set (`publish_staged_set`): a journal
written before the first move lets a failure, or the next run after a crash, undo a half-done set.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
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
    # audit_staged and publish_staged_set each check that the staged output is complete
    result = audit_staged(spark, warehouse, table, ds, audit, attempt) if audit else {}
    publish_staged_set(spark, warehouse, [table], ds, attempt)
    return result


def _lock_path(warehouse: str, table: str, ds: date) -> str:
    return f"{warehouse}/_locks/{table}/ds={ds.isoformat()}.lock"


def _trash_path(warehouse: str, table: str, ds: date, owner: str | None = None) -> str:
    base = f"{warehouse}/_trash/{table}/ds={ds.isoformat()}"
    return base if owner is None else f"{base}/{owner}"


def _journal_dir(warehouse: str, ds: date) -> str:
    return f"{warehouse}/_txn/ds={ds.isoformat()}"


def publish_staged_set(
    spark: SparkSession, warehouse: str, tables: Sequence[str], ds: date, attempt: str | None = None
) -> None:
    """Swap several already audited, staged tables into place as one unit.

    Takes every table's partition lock (in name order, so two publishers cannot deadlock), then for
    each table moves the published partition aside and the staged one in. A journal naming the set
    is written before the first move and removed after the last: if a move fails, the moves done so
    far are undone here; if the process dies half-way, the next publisher of these tables undoes
    them from the journal before it starts (`_undo_interrupted`). Either way the earlier partitions
    come back and no reader is left with half of a set for longer than the crash lasts.
    """
    tables = sorted(set(tables))
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
    finally:
        for lock in held:
            fs.delete(lock)


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
) -> dict:
    """Stage df in a folder private to this attempt, audit it, publish it; on failure, clean up."""
    return write_audit_publish_set({table: (df, audit)}, warehouse, ds)[table]


def write_audit_publish_set(
    frames: dict[str, tuple[DataFrame, Callable[[DataFrame], dict] | None]],
    warehouse: str,
    ds: date,
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
        publish_staged_set(spark, warehouse, list(frames), ds, attempt)
        return results
    finally:
        for table in frames:
            discard_staged(spark, warehouse, table, ds, attempt)


def read_table(spark: SparkSession, warehouse: str, table: str, ds: date) -> DataFrame:
    uri = table_path(warehouse, table, ds)
    if not Fs(spark, uri).exists(f"{uri}/_SUCCESS"):
        raise FileNotFoundError(f"{table} for ds={ds} has not been published: {uri}")
    return spark.read.parquet(uri)
