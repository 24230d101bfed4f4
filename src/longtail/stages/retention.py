"""Retention: delete the nights that fell out of their window, compact the embedding cache.

Runs last each night (and from `make retention`). For each night with something to delete it takes
that night's removal lock and deletes nothing while a running stage holds a read lease on it
(warehouse.leases.read_lease); each partition also goes under its publish lock, moved aside in
one rename (readers see it whole or not at all), then deleted. The newest partition of every
table stays. What was deleted, and what was skipped and why, is the run record
`_runs/ds=<ds>/retention.json`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from longtail import columns as C
from longtail import tables
from longtail.config import RetentionConfig
from longtail.retention import ds_of, expired, first_copies, window_start
from longtail.stages.common import stage_main
from longtail.warehouse.fs import Fs
from longtail.warehouse.layout import CACHE_KEY, night_key, table_path
from longtail.warehouse.leases import LEASE_STALE_S, removal_lock
from longtail.warehouse.publish import remove_partition, write_audit_publish
from longtail.warehouse.reads import read_parquet


def _plan_tables(fs: Fs, cfg: RetentionConfig) -> dict[date, list[str]]:
    """night -> tables whose partition of that night falls out of its window."""
    windows = [(t, cfg.keep_nights) for t in tables.INTERMEDIATE]
    windows += [(t, cfg.keep_published_nights) for t in tables.PUBLISHED]
    plan: dict[date, list[str]] = {}
    for table, keep in windows:
        days = [d for d in map(ds_of, fs.list_dirs(table_path(cfg.warehouse, table))) if d]
        for day in expired(days, cfg.ds, keep):
            plan.setdefault(day, []).append(table)
    return plan


def _dated_entries(fs: Fs, folder: str, depth: int = 4) -> list[tuple[date, str]]:
    """(night, uri) of the `ds=...` entries below folder (tables may be nested: `_cache/...`)."""
    out: list[tuple[date, str]] = []
    folders = set(fs.list_dirs(folder))
    for name in fs.list_names(folder):
        uri = f"{folder}/{name}"
        day = ds_of(name)
        if day is not None:
            out.append((day, uri))
        elif depth > 1 and name in folders:
            out += _dated_entries(fs, uri, depth - 1)
    return out


def _plan_leftovers(fs: Fs, cfg: RetentionConfig) -> dict[date, list[str]]:
    """night -> staging and trash entries of runs that died, before the window and hours old.

    The age matters: score hands its staged attempt to publish, and nothing holds a lease on it
    between the two tasks.
    """
    start = window_start(cfg.ds, cfg.keep_nights)
    plan: dict[date, list[str]] = {}
    for root in tables.LEFTOVER_ROOTS:
        for day, uri in _dated_entries(fs, f"{cfg.warehouse}/{root}"):
            if day < start and fs.age_s(uri) > LEASE_STALE_S:
                plan.setdefault(day, []).append(uri)
    return plan


def _expire(spark: SparkSession, fs: Fs, cfg: RetentionConfig) -> dict[str, Any]:
    parts, leftovers = _plan_tables(fs, cfg), _plan_leftovers(fs, cfg)
    deleted: dict[str, list[str]] = {}
    removed: list[str] = []
    skipped: list[dict[str, str]] = []
    for day in sorted(set(parts) | set(leftovers)):
        with removal_lock(spark, cfg.warehouse, night_key(day)) as free:
            if not free:
                for table in parts.get(day, []):
                    skipped.append({"table": table, "ds": day.isoformat(), "reason": "in use"})
                continue
            for table in parts.get(day, []):
                if remove_partition(spark, cfg.warehouse, table, day):
                    deleted.setdefault(table, []).append(day.isoformat())
                else:
                    skipped.append({"table": table, "ds": day.isoformat(), "reason": "locked"})
            for uri in leftovers.get(day, []):
                fs.delete(uri)
                removed.append(uri[len(cfg.warehouse) + 1 :])
    return {"deleted": deleted, "leftovers_deleted": removed, "skipped": skipped}


def compact_cache(spark: SparkSession, fs: Fs, warehouse: str) -> dict[str, Any]:
    """Keep each text hash once per model: in the earliest night's partition, the one content reads.

    Copies come from nights that embedded the same new text at the same time (a backfill running
    two nights at once). Rewritten partitions are published like any table (write-audit-publish).
    """
    out: dict[str, Any] = {}
    cache = f"{warehouse}/{tables.EMBEDDING_CACHE}"
    with removal_lock(spark, warehouse, CACHE_KEY) as free:
        if not free:
            return {"skipped": "in use"}
        for model in fs.list_dirs(cache):
            name = f"{tables.EMBEDDING_CACHE}/{model}"
            root = f"{warehouse}/{name}"
            if not fs.list_files(root):
                continue
            held = spark.read.parquet(root).select(C.TEXT_HASH, C.DS)
            copied = held.groupBy(C.TEXT_HASH).count().where(F.col("count") > 1).select(C.TEXT_HASH)
            rows = held.join(copied, C.TEXT_HASH, "left_semi").collect()  # only the copies
            extra = first_copies((r[C.TEXT_HASH], r[C.DS]) for r in rows)
            rewritten, removed = [], []
            for day, hashes in sorted(extra.items()):
                part = read_parquet(spark, table_path(warehouse, name, day))
                drop = spark.createDataFrame(
                    [(h,) for h in sorted(hashes)], f"{C.TEXT_HASH} string"
                )
                kept = part.join(F.broadcast(drop), C.TEXT_HASH, "left_anti")
                if kept.isEmpty():
                    if remove_partition(spark, warehouse, name, day):
                        removed.append(day.isoformat())
                else:
                    write_audit_publish(kept, warehouse, name, day)
                    rewritten.append(day.isoformat())
            out[model] = {
                "copies_removed": sum(len(h) for h in extra.values()),
                "partitions_rewritten": rewritten,
                "partitions_removed": removed,
            }
    return out


def run(spark: SparkSession, cfg: RetentionConfig) -> dict[str, Any]:
    fs = Fs(spark, cfg.warehouse)
    record = _expire(spark, fs, cfg)
    if cfg.compact_embedding_cache:
        record["embedding_cache"] = compact_cache(spark, fs, cfg.warehouse)
    record["counts"] = {
        "partitions_deleted": sum(len(v) for v in record["deleted"].values()),
        "leftovers_deleted": len(record["leftovers_deleted"]),
        "skipped": len(record["skipped"]),
    }
    return record


def main(argv: list[str] | None = None) -> int:
    return stage_main("retention", RetentionConfig, run, argv)
