"""A stage's output in a staging folder private to its attempt, until publish moves it into place.

Names starting with `_` are skipped by Spark, pyarrow and DuckDB, so nothing staged is ever read
as a table. A folder carries an owner mark (`.owner`, the process's lock_holder) while its
process may still add to it: the next attempt on the same host sweeps a dead process's folders.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import TypeVar

from pyspark.sql import DataFrame, SparkSession

from longtail.warehouse.fs import Fs, PublishError
from longtail.warehouse.layout import (
    OWNER_SUFFIX,
    SUCCESS,
    attempt_prefix,
    owner_path,
    staging_folder,
    staging_path,
)
from longtail.warehouse.leases import holder_is_dead, lock_holder
from longtail.warehouse.reads import read_parquet

log = logging.getLogger("longtail")
T = TypeVar("T")


def new_attempt() -> str:
    """A fresh attempt id: the suffix of this attempt's staging folders."""
    return uuid.uuid4().hex[:12]


def write_staging(
    df: DataFrame, warehouse: str, table: str, ds: date, attempt: str | None = None
) -> str:
    """Write a stage's output to its staging folder, replacing an older attempt's."""
    uri = staging_path(warehouse, table, ds, attempt)
    if attempt is not None:
        claim_staging(Fs(df.sparkSession, uri), warehouse, table, ds, attempt)
    df.write.mode("overwrite").parquet(uri)
    return uri


def claim_staging(fs: Fs, warehouse: str, table: str, ds: date, attempt: str) -> None:
    """Mark an attempt's staging folder as this process's, after sweeping dead processes' ones.

    A stage killed outright (no cleanup code runs) leaves its staging folder, perhaps with a
    Spark `_temporary` in it; the next attempt on the same host removes it. Folders without an
    owner mark (handed over to a later stage, see release_staging) are never swept.
    """
    folder = staging_folder(warehouse, table)
    prefix = attempt_prefix(ds)
    for name in fs.list_names(folder):
        if name.startswith(prefix) and name.endswith(OWNER_SUFFIX):
            marker = f"{folder}/{name}"
            try:
                dead = holder_is_dead(fs.read_text(marker))
            except Exception:  # removed meanwhile by its owner
                continue
            if dead:
                staged = marker[: -len(OWNER_SUFFIX)]
                log.warning("removing %s, staged by a process that died", staged)
                fs.delete(staged)
                fs.delete(marker)
    fs.write_text(owner_path(staging_path(warehouse, table, ds, attempt)), lock_holder())


def release_staging(
    spark: SparkSession, warehouse: str, table: str, ds: date, attempt: str
) -> None:
    """Hand a complete staged attempt over to a later stage (it outlives this process)."""
    uri = owner_path(staging_path(warehouse, table, ds, attempt))
    Fs(spark, uri).delete(uri)


def discard_staged(
    spark: SparkSession, warehouse: str, table: str, ds: date, attempt: str | None = None
) -> None:
    """Remove a failed attempt's staging folder (a no-op once it has been published)."""
    uri = staging_path(warehouse, table, ds, attempt)
    try:
        fs = Fs(spark, uri)
        for path in (uri, owner_path(uri)):
            if fs.exists(path):
                fs.delete(path)
    except Exception:  # cleanup must never hide the error that got us here
        log.warning("could not remove %s", uri, exc_info=True)


def stage_for_later(
    df: DataFrame, warehouse: str, table: str, ds: date, inspect: Callable[[DataFrame], T]
) -> tuple[str, T]:
    """Stage df for a later process to audit and publish; returns (attempt, what inspect says).

    The later process passes the attempt to publish.publish_staged (score hands it to publish in
    its run record). inspect sees the staged output, read back; if the write or inspect fails,
    the staging goes, else it is released: it outlives this process (see release_staging).
    """
    attempt = new_attempt()
    spark = df.sparkSession
    try:
        facts = inspect(read_parquet(spark, write_staging(df, warehouse, table, ds, attempt)))
    except BaseException:
        discard_staged(spark, warehouse, table, ds, attempt)
        raise
    release_staging(spark, warehouse, table, ds, attempt)
    return attempt, facts


@contextmanager
def staging_attempt(
    spark: SparkSession,
    warehouse: str,
    tables: Iterable[str],
    ds: date,
    attempt: str | None = None,
) -> Iterator[str]:
    """An attempt id (a new one unless given) whose staging of tables is removed when the block
    ends, however it ends; what was published by then has moved out of staging already."""
    attempt = attempt or new_attempt()
    try:
        yield attempt
    finally:
        for table in tables:
            discard_staged(spark, warehouse, table, ds, attempt)


def check_staged(fs: Fs, staged: str, table: str, ds: date) -> None:
    """The staged output is complete: written to the end, and no writer is still at it."""
    if not fs.exists(f"{staged}/{SUCCESS}"):
        raise PublishError(f"nothing staged for {table} ds={ds}: {staged}/{SUCCESS} is missing")
    if fs.exists(f"{staged}/_temporary"):
        raise PublishError(
            f"staged {table} ds={ds} is still being written by another run ({staged}/_temporary)"
        )
