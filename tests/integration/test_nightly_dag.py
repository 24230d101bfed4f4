"""End to end through real Airflow: `python -m longtail.airflow_run` (= `airflow dags test`).

One nightly run on a small generated shop, checked against the output contract with expectations
computed here, with plain pandas from the landing files (no pipeline code); then a re-run of the
same date (idempotent, nothing left behind; long variant), then a run on a landing folder that
breaks the input contract (fails, names the file and the column, and the published partition, its
manifest, the latest pointers and the asset events are untouched). Then, in the long variant, a
second night with retention set to one night (the in-process tests in tests/reliability cover
retention, latest pointers and manifests across nights by default); then Airflow's scheduler and
api-server start, the example consumer DAG runs once for each night's `recommendations`
partition, and the asset events are read through the REST API.

The tests share one warehouse and run in file order; each can also run alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from bench.airflow_local import SQLITE_CONNECT_ARGS, base_env
from longtail import consumer, reasons, registry
from longtail.sample import SampleConfig, generate
from longtail.session.client import stop_server

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
SAMPLE = SampleConfig(n_users=300, n_items=200, n_days=20, seed=3)
TOP_N = 10
RUN_TIMEOUT_S = 1200  # one DAG run: ~4 min on 2 idle cores, twice that on a busy machine
CONSUMER_TIMEOUT_S = 600  # scheduler and api-server start, then a short consumer run a night
PUBLISHED = ("recommendations", "similar_items", "item_audiences", "quality_metrics")
# table -> the DAG task whose outlet it is
PUBLISHER = {
    "recommendations": "publish",
    "similar_items": "similar_items",
    "item_audiences": "item_audiences",
    "quality_metrics": "quality",
}
INTERMEDIATE = (
    "bronze_events",
    "bronze_items",
    "bronze_users",
    "quarantine",
    "catalogue",
    "silver_events",
    "interactions",
    "item_embeddings",
    "item_stats",
    "item_cooccurrence",
    "als_user_factors",
    "als_item_factors",
    "ranker",
)
EXTRA_KEYS = {"ds", "rows", "users", "model_version", "path"}
CONSUMER = "longtail_segment_export"

EVENT_TYPES = {"purchase", "view", "add_to_cart", "rating", "review"}
OWNED_TYPES = {"purchase", "rating", "review"}  # never recommended again
BOT_MAX_EVENTS_PER_DAY = 500
MIN_VALID_TS = pd.Timestamp("1995-01-01", tz="UTC")
MAX_FUTURE_DAYS = 366  # CleanConfig.max_future_days
RECOMMENDATION_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("rank", pa.int32()),
        ("item_id", pa.string()),
        ("score", pa.float64()),
        ("source", pa.string()),
        ("model_version", pa.string()),
        ("is_long_tail", pa.bool_()),
        ("reason_item_id", pa.string()),
        ("reason", pa.string()),
    ]
)
# Where a recommended item came from: the fusion candidate sources, or the popularity fallback.
KNOWN_SOURCES = {
    "als",
    "cooccurrence",
    "text_ngram",
    "content",
    "category",
    "tail_explorer",
    "cold_text",
    "popularity",
}


# --------------------------------------------------------------------------- running Airflow


@dataclass(frozen=True)
class Nightly:
    base: Path
    landing: Path
    warehouse: Path
    ds: str
    env: dict[str, str]
    summary: dict[str, Any]
    first_output: str = ""

    @property
    def published(self) -> Path:
        return self.warehouse / "recommendations" / f"ds={self.ds}"


def _airflow_env(base: Path) -> dict[str, str]:
    """An isolated Airflow (own home, SQLite DB, connection from the environment)."""
    env = base_env(base / "airflow", base / "warehouse")
    # the example consumer must be unpaused when the first asset event arrives
    env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "False"
    return env


def _airflow_run(
    run: Nightly,
    landing: Path,
    log_name: str,
    ds: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "longtail.airflow_run",
        "--via",
        "dags-test",
        "--overrides",
        json.dumps(overrides or {}),
        "--ds",
        ds or run.ds,
        "--landing",
        str(landing),
        "--warehouse",
        str(run.warehouse),
        "--top-n",
        str(TOP_N),
        "--log",
        str(run.base / log_name),
    ]
    return subprocess.run(
        cmd,
        cwd=run.base,
        env=run.env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


def _explain(proc: subprocess.CompletedProcess[str], log: Path) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{text[-6000:]}"


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nightly]:
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs a Java runtime")
    base = tmp_path_factory.mktemp("nightly")
    summary = generate(base / "landing", SAMPLE)
    run = Nightly(
        base=base,
        landing=base / "landing",
        warehouse=base / "warehouse",
        ds=summary["end_date"],
        env=_airflow_env(base),
        summary=summary,
    )
    migrate = subprocess.run(
        ["airflow", "db", "migrate"],
        cwd=base,
        env=run.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    try:
        proc = _airflow_run(run, run.landing, "run-1.log")
        assert proc.returncode == 0, _explain(proc, base / "run-1.log")
        yield dataclasses.replace(run, first_output=proc.stdout)
    finally:  # the Spark session `make run` started for this Airflow home
        stop_server(base / "airflow" / "session")


# ------------------------------------------------------------- expectations, from the landing


def _blank_to_na(s: pd.Series) -> pd.Series:
    s = s.astype("string").str.strip()
    return s.mask(s == "")


def _parse_ts(raw: pd.Series) -> pd.Series:
    """Epoch seconds (milliseconds when huge) or ISO-8601 text; anything else is NaT."""
    numeric = raw.str.fullmatch(r"-?\d+(\.\d+)?").fillna(False).astype(bool)
    num = pd.to_numeric(raw.where(numeric), errors="coerce")
    num = num.where(num.abs() < 1e11, num / 1000)
    as_epoch = pd.to_datetime(num, unit="s", utc=True, errors="coerce")
    as_text = pd.to_datetime(raw.where(~numeric), utc=True, errors="coerce", format="ISO8601")
    return as_epoch.where(numeric, as_text)


@dataclass(frozen=True)
class Expected:
    events_in: int
    accepted: pd.DataFrame  # user_id, item_id, event_type
    deferred: int
    event_reasons: dict[str, int]
    items_in: int
    items_deferred: int
    item_reasons: dict[str, int]
    listed_items: set[str]  # catalogue ids listed by the run date
    unknown_event_items: set[str]  # item ids seen in events but in no items file
    untitled_items: set[str]
    hidden_items: set[str]  # unavailable (available false, stock <= 0) or excluded by the rules
    item_category: dict[str, str]
    max_per_category: int | None


def _expected(landing: Path, ds: str) -> Expected:
    files = sorted((landing / "events").rglob("*.csv.gz"))
    assert files
    ev = pd.concat(
        [pd.read_csv(f, dtype=str, keep_default_na=False, na_filter=False) for f in files],
        ignore_index=True,
    )
    user, item, ts_raw = (_blank_to_na(ev[c]) for c in ("user_id", "item_id", "ts"))
    etype = _blank_to_na(ev["event_type"]).str.lower().fillna("purchase")
    qty_raw, val_raw = _blank_to_na(ev["quantity"]), _blank_to_na(ev["value"])
    qty = pd.to_numeric(qty_raw, errors="coerce")
    val = pd.to_numeric(val_raw, errors="coerce")
    ts = _parse_ts(ts_raw)
    end = pd.Timestamp(ds, tz="UTC") + pd.Timedelta(days=1)
    broken_clock = end + pd.Timedelta(days=MAX_FUTURE_DAYS)
    deferred = (ts.notna() & (ts >= end) & (ts < broken_clock)).to_numpy()

    items = pd.concat(
        [
            pd.read_parquet(landing / "items" / "items.parquet"),
            pd.read_json(landing / "items" / "late_items.jsonl", lines=True, dtype=False),
        ],
        ignore_index=True,
    )
    item_ids = _blank_to_na(items["item_id"])
    first_seen = pd.to_datetime(items["first_seen"], errors="coerce")
    listed_mask = (first_seen.isna() | (first_seen <= pd.Timestamp(ds))).to_numpy()
    listed = items[listed_mask]
    listed_ids = _blank_to_na(listed["item_id"])
    item_reasons = {
        "missing_item_id": int(listed_ids.isna().sum()),
        "duplicate_item": int(listed_ids.dropna().duplicated().sum()),
    }
    catalogue = set(listed_ids.dropna())

    reason = np.full(len(ev), None, dtype=object)

    def flag(mask: Any, name: str) -> None:
        m = np.asarray(mask, dtype=bool) & pd.isna(reason) & ~deferred
        reason[m] = name

    def b(s: pd.Series) -> np.ndarray:
        return s.fillna(False).astype(bool).to_numpy()

    flag(b(ts_raw.notna() & ts.isna()), "invalid_timestamp")
    flag(b(qty_raw.notna() & qty.isna()), "invalid_quantity")
    flag(b(val_raw.notna() & val.isna()), "invalid_value")
    flag(b(user.isna()), "missing_user_id")
    flag(b(item.isna()), "missing_item_id")
    flag(b(ts.isna()), "missing_timestamp")
    flag(b(ts < MIN_VALID_TS), "timestamp_too_old")
    flag(b(ts >= broken_clock), "timestamp_in_future")
    flag(b(~etype.isin(EVENT_TYPES)), "unknown_event_type")
    flag(b(qty <= 0), "non_positive_quantity")
    flag(b((etype == "purchase") & (val <= 0)), "non_positive_price")
    flag(b(~item.isin(catalogue)), "unknown_item")
    key = pd.DataFrame({"u": user, "i": item, "t": ts, "e": etype, "q": qty, "v": val}).reset_index(
        drop=True
    )
    ok = pd.isna(reason) & ~deferred
    dup = np.zeros(len(ev), dtype=bool)
    dup[np.flatnonzero(ok)] = key[ok].duplicated().to_numpy()
    flag(dup, "duplicate_event")
    ok = pd.isna(reason) & ~deferred
    day = ts.dt.floor("D")
    per_day = key[ok].assign(d=day[ok].to_numpy()).groupby(["u", "d"])["i"].transform("size")
    bot = np.zeros(len(ev), dtype=bool)
    bot[np.flatnonzero(ok)] = (per_day > BOT_MAX_EVENTS_PER_DAY).to_numpy()
    flag(bot, "bot_activity")
    ok = pd.isna(reason) & ~deferred

    accepted = pd.DataFrame(
        {"user_id": user[ok], "item_id": item[ok], "event_type": etype[ok]}
    ).astype(str)
    reasons = pd.Series(reason[~pd.isna(reason)]).value_counts()
    all_item_ids = set(item_ids.dropna())
    rules_file = landing / "rules" / "rules.yaml"
    shop_rules = yaml.safe_load(rules_file.read_text()) if rules_file.exists() else {}
    none = pd.Series([None] * len(items), index=items.index, dtype=object)
    off = items.get("available", none).eq(False)
    sold_out = pd.to_numeric(items.get("stock", none), errors="coerce").le(0)
    hidden = set(item_ids[(off | sold_out).to_numpy()].dropna())
    hidden |= set(shop_rules.get("exclude", {}).get("item_ids", []))
    return Expected(
        events_in=len(ev),
        accepted=accepted.reset_index(drop=True),
        deferred=int(deferred.sum()),
        event_reasons={str(k): int(v) for k, v in reasons.items()},
        items_in=len(items),
        items_deferred=int((~listed_mask).sum()),
        item_reasons={k: v for k, v in item_reasons.items() if v},
        listed_items=catalogue,
        unknown_event_items=set(item.dropna()) - all_item_ids,
        untitled_items=set(item_ids[_blank_to_na(items["title"]).isna()].dropna()),
        hidden_items=hidden,
        item_category=dict(zip(item_ids.astype(str), items["category"].astype(str), strict=True)),
        max_per_category=shop_rules.get("max_per_category"),
    )


@pytest.fixture(scope="module")
def expected(nightly: Nightly) -> Expected:
    return _expected(nightly.landing, nightly.ds)


# ------------------------------------------------------------------------------ helpers


def _read_published(path: Path) -> pd.DataFrame:
    return (
        pq.read_table(path)
        .to_pandas()
        .sort_values(["user_id", "rank"], kind="stable")
        .reset_index(drop=True)
    )


def _record(run: Nightly, stage: str) -> dict[str, Any]:
    return json.loads((run.warehouse / "_runs" / f"ds={run.ds}" / f"{stage}.json").read_text())


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# -------------------------------------------------------------------------------- the tests


def test_published_partition_layout_and_schema(nightly: Nightly) -> None:
    out = nightly.published
    assert (out / "_SUCCESS").is_file()
    parts = sorted(out.glob("part-*.parquet"))
    assert parts
    assert not list(out.rglob("_temporary"))
    visible = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert visible == {"_SUCCESS", "_manifest.json", *(p.name for p in parts)}

    table = pq.read_table(out)
    assert table.schema.names == RECOMMENDATION_SCHEMA.names
    for field in RECOMMENDATION_SCHEMA:
        assert table.schema.field(field.name).type == field.type, field.name

    con = duckdb.connect()
    partition = f"read_parquet('{out}/part-*.parquet', hive_partitioning = false)"
    rows, users = con.execute(
        f"SELECT count(*), count(DISTINCT user_id) FROM {partition}"
    ).fetchone()
    assert rows == table.num_rows
    assert users == len(set(table.column("user_id").to_pylist()))
    described = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {partition}").fetchall()}
    # Readers of the whole table get ds from the folder name (Hive layout).
    whole = f"read_parquet('{out.parent}/*/part-*.parquet', hive_partitioning = true)"
    (ds,) = con.execute(f"SELECT DISTINCT CAST(ds AS VARCHAR) FROM {whole}").fetchone()
    assert ds == nightly.ds
    assert described == {
        "user_id": "VARCHAR",
        "rank": "INTEGER",
        "item_id": "VARCHAR",
        "score": "DOUBLE",
        "source": "VARCHAR",
        "model_version": "VARCHAR",
        "is_long_tail": "BOOLEAN",
        "reason_item_id": "VARCHAR",
        "reason": "VARCHAR",
    }
    for name in ("_staging", "_trash"):
        assert not _files_under(nightly.warehouse / name / "recommendations" / f"ds={nightly.ds}")


def test_every_stage_ran_in_one_long_lived_session(nightly: Nightly) -> None:
    """`make run` ran the night's stages in one Spark session (longtail.session), not a driver
    each: every stage's run record names the same application, on the local master."""
    assert "longtail: Spark session at http://127.0.0.1:" in nightly.first_output
    spark = {name: _record(nightly, name)["spark"] for name in registry.NAMES}
    assert {s["master"] for s in spark.values()} == {"local[2]"}
    assert len({s["app_id"] for s in spark.values()}) == 1, spark


def test_top_n_lists_are_well_formed(nightly: Nightly, expected: Expected) -> None:
    recs = _read_published(nightly.published)
    assert recs.drop(columns=["reason_item_id", "reason"]).notna().all().all()
    per_user = recs.groupby("user_id")
    assert (per_user.size() == TOP_N).all()
    assert all(ranks == list(range(1, TOP_N + 1)) for ranks in per_user["rank"].apply(list))
    assert not recs.duplicated(["user_id", "item_id"]).any()
    assert (per_user["score"].diff().dropna() <= 0).all(), "scores must not increase with rank"
    assert set(recs["source"]) <= KNOWN_SOURCES

    recommended = set(recs["item_id"])
    assert recommended <= expected.listed_items
    assert not recommended & expected.unknown_event_items
    assert not recommended & expected.untitled_items
    # The sample's business rules: unavailable and excluded items never shown, caps held.
    assert expected.hidden_items and not recommended & expected.hidden_items
    similar = pq.read_table(nightly.warehouse / "similar_items" / f"ds={nightly.ds}").to_pandas()
    assert not set(similar["similar_item_id"]) & expected.hidden_items
    if expected.max_per_category is not None:
        per_category = recs.assign(c=recs["item_id"].map(expected.item_category))
        assert per_category.groupby(["user_id", "c"]).size().max() <= expected.max_per_category

    model_versions = set(recs["model_version"])
    assert len(model_versions) == 1
    assert model_versions == {_record(nightly, "publish")["model_version"]}
    assert next(iter(model_versions)).startswith(f"fusion-{nightly.ds}-")


def test_every_user_with_valid_history_and_only_they_are_scored(
    nightly: Nightly, expected: Expected
) -> None:
    recs = _read_published(nightly.published)
    users = set(expected.accepted["user_id"])
    bot = nightly.summary["bot_user"]
    assert bot and bot not in users, "the bot's only activity is one quarantined day"
    assert set(recs["user_id"]) == users
    assert _record(nightly, "publish")["counts"] == {
        "users": len(users),
        "rows": len(users) * TOP_N,
    }


def test_reasons_name_the_shoppers_own_items(nightly: Nightly, expected: Expected) -> None:
    recs = _read_published(nightly.published)
    assert set(recs["reason"].dropna()) <= set(reasons.CODES)
    coded = recs["reason"].notna()
    assert (recs.loc[coded, "reason"] == recs.loc[coded, "source"].map(reasons.BY_SOURCE)).all()
    assert (recs["reason_item_id"].notna() == recs["reason"].isin(reasons.ITEM_REASONS)).all()
    assert coded.mean() > 0.8  # nearly every row has its reason
    own = expected.accepted[["user_id", "item_id"]].drop_duplicates()
    named = recs.dropna(subset=["reason_item_id"])[["user_id", "reason_item_id"]]
    clash = named.merge(
        own,
        left_on=["user_id", "reason_item_id"],
        right_on=["user_id", "item_id"],
        how="left",
        indicator=True,
    )
    assert (clash["_merge"] == "both").all(), clash[clash["_merge"] != "both"].head()


def test_owned_items_are_never_recommended(nightly: Nightly, expected: Expected) -> None:
    recs = _read_published(nightly.published)
    acc = expected.accepted
    owned = acc[acc["event_type"].isin(OWNED_TYPES)][["user_id", "item_id"]].drop_duplicates()
    assert len(owned) > 0
    clash = recs.merge(owned, on=["user_id", "item_id"])
    assert clash.empty, clash.head()


def test_every_user_goes_through_the_ranker(nightly: Nightly, expected: Expected) -> None:
    recs = _read_published(nightly.published)
    distinct = expected.accepted.groupby("user_id")["item_id"].nunique()
    thin, rich = set(distinct[distinct < 2].index), set(distinct[distinct >= 2].index)
    assert thin and rich
    sources = recs.groupby("user_id")["source"].agg(set)
    # Users with a history get personalised lists: at least one item not from popularity.
    assert all(sources[u] - {"popularity"} for u in rich)
    # One item is enough to retrieve from (its text, category and co-buyers): shoppers with a
    # single item are ranked too, not handed the popularity list.
    personal = [u for u in thin if sources[u] - {"popularity"}]
    assert len(personal) >= 0.5 * len(thin), (len(personal), len(thin))


def test_the_exposure_spread_is_recorded_with_its_strength_and_sample(
    nightly: Nightly, expected: Expected
) -> None:
    spread = _record(nightly, "score")["spread"]
    # The default strength (0.1), counted on a sample larger than the sample shop: every user.
    assert spread["strength"] == 0.1 and spread["chosen_by"] == "config"
    assert spread["sample_users"] == 5000
    recs = _read_published(nightly.published)
    # Items shown in some top 10 before spreading: at least the ten of one list, at most what
    # is listed.
    assert 10 <= spread["items_shown"] <= len(expected.listed_items)
    meta = json.loads((nightly.warehouse / "ranker" / f"ds={nightly.ds}" / "meta.json").read_text())
    trials = meta["spread"]
    assert trials["strength"] in (0.0, 0.1, 0.2, 0.3, 0.4) or trials["users"] == 0
    assert set(trials) >= {"strength", "users"}
    assert recs["item_id"].nunique() >= 10


def test_the_new_item_slots_are_recorded_with_the_nights_bar(nightly: Nightly) -> None:
    new_items = _record(nightly, "score")["new_items"]
    # The default: a mean of 0.1 x N slots a list, at most 0.2 x N for one shopper, the bar set
    # on the exposure sample's lists (every user of the test shop has one).
    recs = _read_published(nightly.published)
    top_n = int(recs["rank"].max())
    assert new_items["slots"] == "matched" and new_items["share"] == 0.1
    assert new_items["candidates"] == 40  # k_cold_text: wider than the ranker's 20
    assert new_items["max_per_list"] == int(0.2 * top_n)
    users = recs["user_id"].nunique()
    assert 1 <= new_items["sample_users"] <= min(5000, users)
    assert new_items["threshold"] is None or np.isfinite(new_items["threshold"])


def test_quarantine_and_run_accounting(nightly: Nightly, expected: Expected) -> None:
    q = pd.read_parquet(nightly.warehouse / "quarantine" / f"ds={nightly.ds}")
    assert {"table", "reason", "source_file", "record"} <= set(q.columns)
    assert q["reason"].notna().all()
    assert q["source_file"].notna().all()
    got = q.groupby(["table", "reason"]).size()
    events = {r: int(n) for (t, r), n in got.items() if t == "events"}
    items = {r: int(n) for (t, r), n in got.items() if t == "items"}

    # Unambiguous kinds, kind by kind (each sample kind is present a few times).
    dirty = nightly.summary["dirty_events"]
    for reason, kind in [
        ("missing_user_id", "null_user_id"),
        ("missing_item_id", "null_item_id"),
        ("unknown_item", "unknown_item"),
        ("unknown_event_type", "unknown_event_type"),
        ("non_positive_quantity", "negative_quantity"),
        ("invalid_timestamp", "unparseable_ts"),
        ("timestamp_too_old", "epoch_zero_ts"),
        ("timestamp_in_future", "future_ts"),  # the sample's future clocks are years ahead
        ("duplicate_event", "duplicate"),
    ]:
        assert events.get(reason, 0) == expected.event_reasons.get(reason, 0), reason
        assert events.get(reason, 0) == dirty[kind] > 0, reason
    assert events.get("bot_activity") == nightly.summary["bot_events"]
    # ... and in total: every quarantined event is one pandas also rejects, for the same reason.
    assert events == expected.event_reasons
    assert items.get("duplicate_item", 0) == expected.item_reasons["duplicate_item"] == 2

    counts = _record(nightly, "clean")["counts"]
    assert counts["events_in"] == (
        counts["events_accepted"] + counts["events_quarantined"] + counts["events_deferred"]
    )
    assert counts["events_in"] == expected.events_in
    assert counts["events_accepted"] == len(expected.accepted)
    assert counts["events_quarantined"] == sum(expected.event_reasons.values())
    assert counts["events_deferred"] == expected.deferred
    assert counts["items_in"] == (
        counts["items_accepted"] + counts["items_quarantined"] + counts["items_deferred"]
    )
    assert counts["items_in"] == expected.items_in
    assert counts["items_deferred"] == expected.items_deferred


@pytest.mark.long  # a whole second DAG run; stage-level reruns: tests/reliability/test_determinism
def test_rerun_of_the_same_date_is_idempotent(nightly: Nightly) -> None:
    before = _read_published(nightly.published)
    version = _record(nightly, "publish")["model_version"]
    proc = _airflow_run(nightly, nightly.landing, "run-2.log")
    assert proc.returncode == 0, _explain(proc, nightly.base / "run-2.log")
    after = _read_published(nightly.published)
    pd.testing.assert_frame_equal(before, after, check_exact=True)
    assert _record(nightly, "publish")["model_version"] == version
    ds_dir = f"ds={nightly.ds}"
    for name in ("_staging", "_trash", "_locks"):
        root = nightly.warehouse / name
        leftovers = [
            p for p in _files_under(root) if ds_dir in p.parts or f"{ds_dir}.lock" in p.name
        ]
        assert not leftovers, leftovers


def test_broken_landing_fails_loudly_and_keeps_the_published_partition(
    nightly: Nightly,
) -> None:
    broken = nightly.base / "landing-broken"
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(nightly.landing, broken)
    day_files = sorted((broken / "events").rglob("*.csv.gz"))
    victim = day_files[len(day_files) // 2]
    pd.read_csv(victim, dtype=str, keep_default_na=False).drop(columns=["item_id"]).to_csv(
        victim, index=False, compression="gzip"
    )
    before = _snapshot(nightly.published)
    record_before = (nightly.warehouse / "_runs" / f"ds={nightly.ds}" / "publish.json").read_bytes()
    assert before
    contract_before, events_before = _contract_files(nightly.warehouse), _asset_events(nightly)
    assert contract_before and events_before

    proc = _airflow_run(nightly, broken, "run-broken.log")
    log = (nightly.base / "run-broken.log").read_text(errors="replace")
    assert proc.returncode != 0, _explain(proc, nightly.base / "run-broken.log")
    assert "FAILED" in proc.stderr
    # a broken landing fails the same way on every attempt: no retries, the reason up front
    assert "new_state=up_for_retry" not in log
    assert "Reason: ingest ds=" in proc.stderr and "LandingContractError" in proc.stderr
    where = f"{victim.parent.name}/{victim.name}"
    for text, name in ((proc.stdout + proc.stderr, "output"), (log, "log")):
        lines = [ln for ln in text.splitlines() if where in ln and "'item_id'" in ln]
        assert lines, f"no line in the {name} names {where} and 'item_id'"

    assert _snapshot(nightly.published) == before
    assert (
        nightly.warehouse / "_runs" / f"ds={nightly.ds}" / "publish.json"
    ).read_bytes() == record_before
    # a failed run changes no manifest or latest pointer and emits no asset event
    assert _contract_files(nightly.warehouse) == contract_before
    assert _asset_events(nightly) == events_before


# ------------------------------------------------------- a second night, assets, the consumer


def _contract_files(warehouse: Path) -> dict[str, str]:
    """Every `_manifest.json` and `_latest.json` of the published tables -> sha256."""
    return {
        k: v
        for table in PUBLISHED
        for k, v in _snapshot(warehouse / table).items()
        if k.endswith(("_manifest.json", "_latest.json"))
    }


def _db(run: Nightly, sql: str, *args: Any) -> list[tuple]:
    con = sqlite3.connect(f"file:{run.base / 'airflow' / 'airflow.db'}?mode=ro", uri=True)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def _asset_events(run: Nightly) -> list[tuple]:
    return _db(run, "SELECT id, asset_id, partition_key, extra FROM asset_event ORDER BY id")


def _partition_rows(partition: Path) -> int:
    (n,) = (
        duckdb.connect()
        .execute("SELECT count(*) FROM read_parquet(?)", [f"{partition}/*.parquet"])
        .fetchone()
    )
    return int(n)


@dataclass(frozen=True)
class SecondNight:
    first: str
    second: str
    proc: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def second_night(nightly: Nightly) -> SecondNight:  # a whole DAG run: long variant only
    """The night after the first, with retention keeping one night."""
    second = (date.fromisoformat(nightly.ds) + timedelta(days=1)).isoformat()
    proc = _airflow_run(
        nightly,
        nightly.landing,
        "run-night-2.log",
        ds=second,
        overrides={"retention": {"keep_nights": 1}},
    )
    assert proc.returncode == 0, _explain(proc, nightly.base / "run-night-2.log")
    return SecondNight(first=nightly.ds, second=second, proc=proc)


@pytest.mark.long  # a second DAG run; in-process: tests/reliability/test_contract.py
def test_second_night_moves_latest_and_every_manifest_counts_its_rows(
    nightly: Nightly, second_night: SecondNight
) -> None:
    for table in PUBLISHED:
        latest = json.loads((nightly.warehouse / table / "_latest.json").read_text())
        assert latest["ds"] == second_night.second, table
        assert latest["path"] == str(nightly.warehouse / table / f"ds={second_night.second}")
        for ds in (second_night.first, second_night.second):
            partition = nightly.warehouse / table / f"ds={ds}"
            manifest = json.loads((partition / "_manifest.json").read_text())
            assert manifest["ds"] == ds and manifest["table"] == table
            assert manifest["rows"] == _partition_rows(partition) > 0, (table, ds)
            for entry in manifest["files"]:
                data = (partition / entry["path"]).read_bytes()
                assert entry["sha256"] == hashlib.sha256(data).hexdigest()
            assert manifest["run_id"].startswith("manual__"), manifest["run_id"]


@pytest.mark.long  # a second DAG run; in-process: tests/reliability/test_retention.py
def test_retention_of_one_night_leaves_the_newest_intermediate_partitions(
    nightly: Nightly, second_night: SecondNight
) -> None:
    wh = nightly.warehouse
    for table in INTERMEDIATE:
        parts = sorted(p.name for p in (wh / table).iterdir() if p.name.startswith("ds="))
        assert parts == [f"ds={second_night.second}"], table
    for table in PUBLISHED:  # kept: every night
        parts = sorted(p.name for p in (wh / table).iterdir() if p.name.startswith("ds="))
        assert parts == [f"ds={second_night.first}", f"ds={second_night.second}"], table
    record = json.loads((wh / "_runs" / f"ds={second_night.second}" / "retention.json").read_text())
    assert record["config"]["keep_nights"] == 1
    assert record["deleted"] == {t: [second_night.first] for t in INTERMEDIATE}
    assert (wh / "_data_docs" / "index.html").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _scheduler_and_api(run: Nightly, deadline: float) -> Iterator[str]:
    """Airflow's api-server, then (once it answers: tasks talk to it) the scheduler, on this
    test's DB; yields the API's base URL."""
    port = _free_port()
    env = {
        **run.env,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        # a longer SQLite busy timeout for the processes sharing the DB file
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": SQLITE_CONNECT_ARGS,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": SQLITE_CONNECT_ARGS,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), run.env.get("PYTHONPATH", "")) if p),
    }
    api = f"http://127.0.0.1:{port}"
    procs = []
    try:
        for name in ("api-server", "scheduler"):
            log = open(run.base / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
            procs.append(
                subprocess.Popen(
                    ["airflow", name],
                    env=env,
                    cwd=run.base,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            while name == "api-server":
                try:
                    _get(f"{api}/api/v2/monitor/health")
                    break
                except urllib.error.HTTPError:  # it answers
                    break
                except OSError:
                    assert procs[0].poll() is None, _tail(run, "api-server")
                    assert time.time() < deadline, _tail(run, "api-server")
                    time.sleep(2)
        yield api
    finally:
        family: list[psutil.Process] = []
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                family += [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(True)]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(family, timeout=20)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        for proc in procs:
            proc.wait(timeout=30)


def _get(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def nights(nightly: Nightly, long_tests: bool, request: pytest.FixtureRequest) -> list[str]:
    """The nights published before the scheduler starts: the first, and the second night in the
    long variant."""
    if not long_tests:
        return [nightly.ds]
    second: SecondNight = request.getfixturevalue("second_night")
    return [second.first, second.second]


@dataclass(frozen=True)
class Served:
    events: list[dict[str, Any]]
    consumer_runs: list[dict[str, Any]]


@pytest.fixture(scope="module")
def served(nightly: Nightly, nights: list[str]) -> Served:
    """Until now Airflow ran as `airflow dags test` (no scheduler): the asset events queued the
    consumer. The scheduler starts its runs; the api-server answers the REST API."""
    pause = subprocess.run(
        ["airflow", "dags", "pause", "longtail_nightly"],  # no scheduled nightly run meanwhile
        env=nightly.env,
        cwd=nightly.base,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pause.returncode == 0, pause.stderr[-2000:]
    deadline = time.time() + CONSUMER_TIMEOUT_S
    with _scheduler_and_api(nightly, deadline) as api:
        runs: list[tuple] = []
        while len([r for r in runs if r[1] == "success"]) < len(nights):
            runs = _db(
                nightly, "SELECT partition_key, state FROM dag_run WHERE dag_id = ?", CONSUMER
            )
            assert "failed" not in {r[1] for r in runs}, (runs, _tail(nightly, "scheduler"))
            assert time.time() < deadline, (runs, _tail(nightly, "scheduler"))
            time.sleep(3)
        token = _get(f"{api}/auth/token")["access_token"]
        events = _get(f"{api}/api/v2/assets/events?source_dag_id=longtail_nightly&limit=100", token)
        consumer = _get(f"{api}/api/v2/dags/{CONSUMER}/dagRuns?limit=100", token)
    return Served(events=events["asset_events"], consumer_runs=consumer["dag_runs"])


def _tail(run: Nightly, name: str, lines: int = 40) -> str:
    path = run.base / f"{name}.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def test_asset_events_through_the_rest_api(
    nightly: Nightly, nights: list[str], served: Served
) -> None:
    """One event per successful publish (night 1, its re-run and night 2 when the long variant
    ran them; none for the failed run), extra = {ds, rows, users, model_version, path}, key = ds."""
    reran = (nightly.base / "run-2.log").exists()  # test_rerun_of_the_same_date_is_idempotent
    expected_nights = [nights[0]] * (2 if reran else 1) + nights[1:]
    by_asset: dict[str, list[dict]] = {}
    for event in served.events:
        by_asset.setdefault(event["name"], []).append(event)
    assert set(by_asset) == {f"longtail.{t}" for t in PUBLISHED}
    for table in PUBLISHED:
        events = sorted(by_asset[f"longtail.{table}"], key=lambda e: e["timestamp"])
        nights = [e["extra"]["ds"] for e in events]
        assert nights == expected_nights, table
        for event in events:
            extra = event["extra"]
            assert set(extra) == EXTRA_KEYS, extra
            assert event["partition_key"] == extra["ds"]
            assert event["source_task_id"] == PUBLISHER[table]
            partition = nightly.warehouse / table / f"ds={extra['ds']}"
            assert extra["path"] == str(partition)
            assert extra["rows"] == _partition_rows(partition)
            if table == "recommendations":
                recs = pq.read_table(partition).to_pandas()
                assert extra["users"] == recs["user_id"].nunique()
                assert [extra["model_version"]] == recs["model_version"].unique().tolist()
            else:
                assert extra["users"] is None


def test_the_consumer_dag_ran_once_for_each_night(
    nightly: Nightly, nights: list[str], served: Served
) -> None:
    runs = served.consumer_runs
    assert sorted(r["state"] for r in runs) == ["success"] * len(nights), runs
    assert sorted(r.get("partition_key") for r in runs) == nights
    for ds in nights:
        csv = nightly.base / "outbox" / "recommendations" / "segment=0" / f"ds={ds}.csv"
        got = pd.read_csv(csv, dtype={"user_id": str, "item_id": str})
        recs = _read_published(nightly.warehouse / "recommendations" / f"ds={ds}")
        mine = recs[[zlib.crc32(u.encode()) % 10 == 0 for u in recs["user_id"]]]
        expected = mine[list(consumer.COLUMNS)].reset_index(drop=True)
        assert len(expected) > 0
        # a null reason: None in Parquet, an empty field in the CSV
        pd.testing.assert_frame_equal(got.fillna(""), expected.fillna(""), check_dtype=False)
