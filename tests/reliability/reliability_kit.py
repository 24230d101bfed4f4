"""Helpers for the reliability tests: landing writers, in-process stage runs, content hashes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads

from longtail import registry, tables
from longtail.config import CleanConfig, IngestConfig, StageConfig
from longtail.stages.common import run_stage as _run_stage

DS = date(2024, 5, 10)
EARLIER_DS = date(2024, 5, 9)
NIGHTS = (EARLIER_DS, DS)
N_ITEMS = 12
N_USERS = 6
EVENTS_HEADER = "user_id,item_id,ts,event_type,quantity,value"
ITEMS_HEADER = "item_id,title,category,price,first_seen,non_product"
# What ingest and clean write from a landing without users/ (bronze_users is written only with it).
INGEST_CLEAN_TABLES = (tables.BRONZE_EVENTS, tables.BRONZE_ITEMS, *tables.SILVER)
TOP_N = 5
# Small models: seconds on two cores, the same code paths as the nightly run. Also given to the
# backfill through Airflow (dag run conf), so both build the very same configs.
# The weekly ranker and ALS selection (an option; nightly by default): every comparison of a
# night run alone with the reference, whose DS copies EARLIER_DS's models, checks that a copied
# model is the one the night would have learned.
PIPELINE_OVERRIDES = {
    "train_als": {"factors": 8, "iterations": 5, "select_every_days": 7},
    "train_ranker": {"retrain_every_days": 7},
}


def iso(day: date, seconds: int = 0) -> str:
    t = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(day: date, seconds: int = 0) -> int:
    t = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)
    return int(t.timestamp())


def item_id(i: int) -> str:
    return f"i{i:02d}"


def csv_text(header: str, rows: Iterable[Iterable[Any]]) -> str:
    lines = [header] + [",".join("" if v is None else str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def base_items() -> list[tuple]:
    cats = ("Kitchen", "Garden", "Books")
    return [
        (item_id(i), f"Item {i}", cats[i % 3], f"{5 + i}.50", "2024-04-01", "false")
        for i in range(1, N_ITEMS + 1)
    ]


def base_events(ds: date = DS, days: int = 10) -> list[tuple]:
    """Every user buys or views a few items a day; deterministic, all valid."""
    rows = []
    for d in range(days):
        day = ds - timedelta(days=days - 1 - d)
        for u in range(1, N_USERS + 1):
            for k in range(2):
                i = 1 + (u * 3 + d * 2 + k * 5) % N_ITEMS
                kind = "purchase" if (u + d + k) % 3 == 0 else "view"
                qty, val = ("1", f"{5 + i}.50") if kind == "purchase" else ("", "")
                rows.append(
                    (f"b-u{u}", item_id(i), iso(day, 3600 * (8 + u) + 60 * k), kind, qty, val)
                )
    return rows


def write_base_landing(root: Path, ds: date = DS, days: int = 10) -> Path:
    write(root / "items" / "items.csv", csv_text(ITEMS_HEADER, base_items()))
    write(root / "events" / "base.csv", csv_text(EVENTS_HEADER, base_events(ds, days)))
    return root


def write_standard_landing(root: Path) -> Path:
    """The base landing plus a little of the usual mess, so every table (quarantine too) has rows.

    Covers both EARLIER_DS and DS: the base events run up to DS, the dirty rows sit on both days.
    """
    write_base_landing(root)
    rows = []
    for day in (EARLIER_DS, DS):
        t = iso(day, 7200)
        rows += [
            ("b-u1", item_id(2), t, "purchase", "1", "7.50"),
            ("b-u1", item_id(2), t, "purchase", "1", "7.50"),  # duplicate
            ("b-u1", item_id(2), str(epoch(day, 7200)), "purchase", "1", "7.50"),  # same, epoch
            ("b-u2", "no-such-item", t, "view", "", ""),
            ("b-u3", item_id(4), "0", "view", "", ""),
            ("b-u4", item_id(5), t, "purchase", "-1", "3.00"),
            ("b-u5", item_id(6), "2035-01-01T00:00:00Z", "view", "", ""),  # a broken clock
        ]
    rows.append(("b-u7", item_id(7), iso(DS + timedelta(days=1), 3600), "view", "", ""))  # later
    text = csv_text(EVENTS_HEADER, rows) + 'b-u6,"broken,line\n'
    write(root / "events" / "dirty.csv", text)
    late = '{"item_id": "late1", "title": "Arrives later", "first_seen": "2024-06-01"}\n'
    # listed a few days before both nights, never sold: a new product with an audience
    late += '{"item_id": "new1", "title": "Item 13", "category": "Kitchen", '
    late += '"first_seen": "2024-05-06"}\n'
    write(root / "items" / "late.jsonl", late)
    return root


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


# --------------------------------------------------------------------------- running stages


def run_stage(spark: Any, name: str, cfg: StageConfig) -> dict[str, Any]:
    return _run_stage(spark, name, cfg)


def ingest_clean(spark: Any, landing: Path | str, warehouse: Path | str, ds: date = DS) -> dict:
    run_stage(spark, "ingest", IngestConfig(ds=ds, warehouse=str(warehouse), landing=str(landing)))
    return run_stage(spark, "clean", CleanConfig(ds=ds, warehouse=str(warehouse)))


def resolved_configs(
    landing: Path | str, warehouse: Path | str, ds: date, overrides: dict | None = None
) -> dict[str, StageConfig]:
    """Every stage's config exactly as the DAG's resolve_run task builds it, in registry order."""
    from longtail.dagargs import resolve

    params = {
        "ds": ds.isoformat(),
        "landing": str(landing),
        "warehouse": str(warehouse),
        "top_n": TOP_N,
        "overrides": PIPELINE_OVERRIDES if overrides is None else overrides,
    }
    configs = resolve(params, None)["configs"]
    return {s.name: s.config_class(**configs[s.name]) for s in registry.STAGES}


def full_pipeline(
    spark: Any,
    landing: Path | str,
    warehouse: Path | str,
    ds: date = DS,
    *,
    skip: tuple[str, ...] = (),
    before: Callable[[str], None] | None = None,
) -> list[str]:
    """Every stage of the nightly DAG in-process, in registry order (ingest .. retention).

    Follows the registry (longtail.registry.STAGES), so stages added there are run here too.
    before(name), if given, is called before each stage: a schedule test holds a stage there.
    """
    done = []
    for name, cfg in resolved_configs(landing, warehouse, ds).items():
        if name not in skip:
            if before is not None:
                before(name)
            run_stage(spark, name, cfg)
            done.append(name)
    return done


def model_and_publish(spark: Any, landing: Path | str, warehouse: Path | str, ds: date) -> None:
    """The stages after ingest and clean, for a warehouse where those two have run."""
    full_pipeline(spark, landing, warehouse, ds, skip=("ingest", "clean"))


def copy_warehouse(src: Path, dst: Path, drop: date | None = None) -> Path:
    """A copy of a warehouse; with drop, without anything of that date (as if it never ran)."""
    shutil.copytree(src, dst)
    if drop is not None:
        for part in dst.glob(f"*/ds={drop.isoformat()}"):
            shutil.rmtree(part)
    return dst


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def run_record(warehouse: Path, ds: date, name: str) -> dict:
    return read_json(warehouse / "_runs" / f"ds={ds.isoformat()}" / f"{name}.json")


# --------------------------------------------------------------------------- comparing outputs


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def table_rows(partition: Path) -> list[dict]:
    """Rows of one published partition, as a reader sees them (`_`/`.` files skipped)."""
    return pads.dataset(str(partition), format="parquet").to_table().to_pylist()


def _data_files(partition: Path) -> list[Path]:
    return sorted(
        p
        for p in partition.rglob("*")
        if p.is_file()
        and not any(part.startswith(("_", ".")) for part in p.relative_to(partition).parts)
    )


def table_hash(partition: Path) -> str:
    """Content hash of a partition: its schema and its rows in sorted order (not file layout).

    A partition without Parquet files (a model folder: meta.json, model.txt) is hashed by the
    bytes of its files instead.
    """
    files = _data_files(partition)
    assert files, f"{partition} has no data files"
    if not any(f.name.endswith(".parquet") for f in files):
        digest = hashlib.sha256()
        for f in files:
            digest.update(str(f.relative_to(partition)).encode() + b"\0" + f.read_bytes())
        return digest.hexdigest()
    data = pads.dataset(str(partition), format="parquet")
    schema = [(f.name, str(f.type)) for f in data.schema]
    lines = sorted(
        json.dumps(r, sort_keys=True, default=_jsonable) for r in data.to_table().to_pylist()
    )
    digest = hashlib.sha256(json.dumps(schema).encode())
    for line in lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def warehouse_hashes(warehouse: Path, ds: date, tables: Iterable[str]) -> dict[str, str]:
    return {t: table_hash(warehouse / t / f"ds={ds.isoformat()}") for t in tables}


def file_snapshot(folder: Path) -> dict[str, str]:
    """Every file below folder (hidden and `_` files included) -> sha256 of its bytes."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def published_partitions(warehouse: Path) -> dict[str, list[str]]:
    """table -> sorted ds=... folders, for every published (not `_`-prefixed) table."""
    if not warehouse.exists():
        return {}
    return {
        t.name: sorted(p.name for p in t.iterdir() if p.is_dir())
        for t in sorted(warehouse.iterdir())
        if t.is_dir() and not t.name.startswith(("_", "."))
    }


def assert_no_partial_output(warehouse: Path) -> None:
    """No `_temporary` (an unfinished Spark write) and a `_SUCCESS` in every published partition."""
    for table, parts in published_partitions(warehouse).items():
        for part in parts:
            folder = warehouse / table / part
            leftovers = [str(p) for p in folder.rglob("_temporary")]
            assert not leftovers, leftovers
            assert (folder / "_SUCCESS").exists(), f"{folder} has no _SUCCESS"


def leftovers(warehouse: Path) -> list[str]:
    """Files still in staging, trash, locks or publish journals (after a run there are none)."""
    out = []
    for name in ("_staging", "_trash", "_locks", "_txn"):
        root = warehouse / name
        if root.exists():
            out += [str(p.relative_to(warehouse)) for p in root.rglob("*") if p.is_file()]
    return sorted(out)


def night_tables(warehouse: Path, ds: Any) -> list[str]:
    """Every table with a partition for ds (published and intermediate: `_` folders are not
    tables, and staging, locks and journals must be empty after a run anyway)."""
    return sorted(t for t, parts in published_partitions(warehouse).items() if f"ds={ds}" in parts)


def assert_same_nights(ours: Path, reference: Path, nights: tuple = NIGHTS) -> None:
    """Every table of each night equals the reference's. Run alone, a night has no earlier
    published list to score, so its `quality_metrics` is compared only when every night ran."""
    history = set() if nights == NIGHTS else {tables.QUALITY_METRICS}
    for ds in nights:
        names = [t for t in night_tables(reference, ds) if t not in history]
        assert set(tables.INTERMEDIATE) - {tables.BRONZE_USERS} <= set(names), names
        assert set(tables.PUBLISHED) - history <= set(names), names
        assert [t for t in night_tables(ours, ds) if t not in history] == names, ds
        mine, theirs = warehouse_hashes(ours, ds, names), warehouse_hashes(reference, ds, names)
        assert mine == theirs, (ds, sorted(t for t in names if mine[t] != theirs[t]))
    assert leftovers(ours) == []
