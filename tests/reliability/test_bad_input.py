"""A catalogue of bad input: every kind is quarantined with a reason or stops the run by name.

Row-level cases share one landing folder (each in its own file, with its own user and item ids)
and one ingest + clean run, so the whole catalogue costs one run. Each case then checks its own
rows: how many came in, which reasons the quarantine gives them, how many were accepted or
deferred. Contract breaches (missing folders, renamed columns, unreadable files) each get a small
landing of their own and must stop ingest with an error naming the file and the column, before
anything is published.

Per run, events in = accepted + quarantined + deferred (the same for items): checked by the clean
stage, recorded in `_runs/ds=<ds>/clean.json`, and checked again here from that file.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from reliability_kit import (
    DS,
    EVENTS_HEADER,
    ITEMS_HEADER,
    csv_text,
    epoch,
    ingest_clean,
    iso,
    item_id,
    leftovers,
    published_partitions,
    run_record,
    run_stage,
    table_rows,
    write,
    write_base_landing,
)

from longtail.config import IngestConfig
from longtail.errors import ERROR_PREFIX, PERMANENT_EXIT_CODE
from longtail.landing import LandingContractError
from longtail.stages import ingest as ingest_stage

REPO = Path(__file__).resolve().parents[2]
ONLINE_RETAIL = REPO.parent / "shared" / "datasets" / "online-retail" / "online_retail.csv.gz"
MAX_TITLE_CHARS = 500  # CleanConfig.max_title_chars
BOT_EVENTS = 501  # CleanConfig.bot_max_events_per_day + 1
MAX_FUTURE_DAYS = 366  # CleanConfig.max_future_days
DAY = DS - timedelta(days=2)
GOOD_ITEM = item_id(1)


@dataclass(frozen=True)
class Expect:
    """What one file's rows must become: rows in, quarantine reasons, accepted, deferred."""

    rows_in: int
    quarantined: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    deferred: int = 0


@dataclass(frozen=True)
class RowCase:
    kind: str
    path: str  # relative to the landing root
    content: bytes
    events: Expect | None = None  # when path is under events/
    items: Expect | None = None  # when path is under items/
    note: str = ""


def _ev(prefix: str, rows: list[tuple]) -> bytes:
    """Events CSV; user ids are prefixed with the case name so accepted rows can be found."""
    return csv_text(
        EVENTS_HEADER, [(None if u is None else f"{prefix}{u}", *rest) for u, *rest in rows]
    ).encode()


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


T = iso(DAY, 36000)  # a valid time on a day inside the window
LONG_TITLE = "Very long title " + "x" * 100_000

ROW_CASES = [
    RowCase(
        "malformed_csv_lines",
        "events/malformed.csv",
        (
            f"{EVENTS_HEADER}\n"
            f"mal-u1,{GOOD_ITEM},{T},view,,\n"
            f'mal-u2,"{GOOD_ITEM},{T},view,,\n'  # unterminated quote
            f"mal-u3,{GOOD_ITEM},{T},view,,,surplus,fields\n"  # more fields than the header
            f"mal-u4,{GOOD_ITEM}\n"  # fewer fields than the header
        ).encode(),
        events=Expect(4, {"malformed_row": 3}, accepted=1),
    ),
    RowCase(
        "embedded_newline_in_quoted_field",
        "events/newline.csv",
        f'{EVENTS_HEADER}\nnl-u1,"i0\n1",{T},view,,\nnl-u2,{GOOD_ITEM},{T},view,,\n'.encode(),
        # read line by line, the broken record is two malformed rows; its neighbour survives
        events=Expect(3, {"malformed_row": 2}, accepted=1),
    ),
    RowCase(
        "wrong_types",
        "events/wrong_types.csv",
        _ev(
            "wt-",
            [
                ("u1", GOOD_ITEM, "yesterday", "view", "", ""),
                ("u2", GOOD_ITEM, T, "purchase", "two", "1.00"),
                ("u3", GOOD_ITEM, T, "purchase", "1", "cheap"),
                ("u4", GOOD_ITEM, T, "purchase", "1", "1.00"),
            ],
        ),
        events=Expect(
            4,
            {"invalid_timestamp": 1, "invalid_quantity": 1, "invalid_value": 1},
            accepted=1,
        ),
    ),
    RowCase(
        "non_finite_numbers",
        "events/non_finite.csv",
        _ev(
            "nf-",
            [
                ("u1", GOOD_ITEM, T, "purchase", "NaN", "1.00"),
                ("u2", GOOD_ITEM, T, "purchase", "Infinity", "1.00"),
                ("u3", GOOD_ITEM, T, "purchase", "1", "1e400"),
            ],
        ),
        events=Expect(3, {"invalid_quantity": 2, "invalid_value": 1}),
    ),
    RowCase(
        "out_of_range_epoch",
        "events/huge_epoch.csv",
        _ev(
            "oe-",
            [
                ("u1", GOOD_ITEM, "99999999999999999999", "view", "", ""),
                ("u2", GOOD_ITEM, "-99999999999999999", "view", "", ""),
            ],
        ),
        events=Expect(2, {"invalid_timestamp": 2}),
    ),
    RowCase(
        "null_or_empty_ids",
        "events/null_ids.csv",
        _ev(
            "ni-",
            [
                (None, GOOD_ITEM, T, "view", "", ""),
                ("u2", "", T, "view", "", ""),
                ("u3", GOOD_ITEM, "", "view", "", ""),
            ],
        ),
        events=Expect(3, {"missing_user_id": 1, "missing_item_id": 1, "missing_timestamp": 1}),
    ),
    RowCase(
        "whitespace_only_ids",
        "events/blank_ids.csv",
        (
            f"{EVENTS_HEADER}\n"
            f"   ,{GOOD_ITEM},{T},view,,\n"
            f'"ws-u2","\t",{T},view,,\n'
            f"ws-u3, {GOOD_ITEM} ,{T},view,,\n"  # padded but present: trimmed and accepted
        ).encode(),
        events=Expect(3, {"missing_user_id": 1, "missing_item_id": 1}, accepted=1),
    ),
    RowCase(
        "unknown_items",
        "events/unknown_items.csv",
        _ev("uk-", [("u1", "no-such-item", T, "view", "", ""), ("u2", "i99", T, "view", "", "")]),
        events=Expect(2, {"unknown_item": 2}),
    ),
    RowCase(
        "duplicate_events",
        "events/duplicates.csv",
        _ev(
            "dup-",
            [
                ("u1", GOOD_ITEM, T, "purchase", "2", "3.00"),
                ("u1", GOOD_ITEM, T, "purchase", "2", "3.00"),
                ("u1", GOOD_ITEM, T, "purchase", "2", "3.00"),
                # the same instant as epoch seconds is the same event
                ("u1", GOOD_ITEM, epoch(DAY, 36000), "purchase", "2", "3.00"),
                ("u1", GOOD_ITEM, T, "purchase", "3", "3.00"),  # another quantity: not a dup
            ],
        ),
        events=Expect(5, {"duplicate_event": 3}, accepted=2),
    ),
    RowCase(
        "future_timestamps",
        "events/future.csv",
        _ev(
            "fu-",
            [
                ("u1", GOOD_ITEM, "2035-01-01T00:00:00Z", "view", "", ""),
                ("u2", GOOD_ITEM, iso(DS + timedelta(days=1)), "view", "", ""),  # the boundary
                ("u3", GOOD_ITEM, iso(DS, 86399), "view", "", ""),  # last second of ds
                # CleanConfig.max_future_days = 366 after the end of ds: the boundary, both sides
                ("u4", GOOD_ITEM, iso(DS + timedelta(days=367)), "view", "", ""),
                ("u5", GOOD_ITEM, iso(DS + timedelta(days=366), 86399), "view", "", ""),
            ],
        ),
        # a year or more after the run date: a broken clock, quarantined; shortly after it:
        # deferred to the run of that date, neither accepted nor quarantined
        events=Expect(5, {"timestamp_in_future": 2}, accepted=1, deferred=2),
    ),
    RowCase(
        "epoch_zero_and_too_old",
        "events/epoch_zero.csv",
        _ev(
            "ez-",
            [
                ("u1", GOOD_ITEM, "0", "view", "", ""),
                ("u2", GOOD_ITEM, "1970-01-01T00:00:00Z", "view", "", ""),
                ("u3", GOOD_ITEM, "1994-12-31T23:59:59Z", "view", "", ""),
            ],
        ),
        events=Expect(3, {"timestamp_too_old": 3}),
    ),
    RowCase(
        "non_positive_quantity",
        "events/quantities.csv",
        _ev(
            "nq-",
            [
                ("u1", GOOD_ITEM, T, "purchase", "0", "2.00"),
                ("u2", GOOD_ITEM, T, "purchase", "-3", "2.00"),
            ],
        ),
        events=Expect(2, {"non_positive_quantity": 2}),
    ),
    RowCase(
        "zero_or_negative_price",
        "events/prices.csv",
        _ev(
            "np-",
            [
                ("u1", GOOD_ITEM, T, "purchase", "1", "0"),
                ("u2", GOOD_ITEM, T, "purchase", "1", "-4.5"),
            ],
        ),
        events=Expect(2, {"non_positive_price": 2}),
    ),
    RowCase(
        "unknown_event_type",
        "events/event_types.csv",
        _ev("et-", [("u1", GOOD_ITEM, T, "click?", "", ""), ("u2", GOOD_ITEM, T, "VIEW", "", "")]),
        events=Expect(2, {"unknown_event_type": 1}, accepted=1),  # case is ignored
    ),
    RowCase(
        "bot_activity",
        "events/bot.csv",
        _ev(
            "bot-",
            [
                ("u1", item_id(1 + s % 12), iso(DAY, 30 * s), "view", "", "")
                for s in range(BOT_EVENTS)
            ]
            + [("u1", GOOD_ITEM, iso(DAY - timedelta(days=1), 60), "view", "", "")],
        ),
        # the absurd user-day is quarantined; the same user's ordinary day is kept
        events=Expect(BOT_EVENTS + 1, {"bot_activity": BOT_EVENTS}, accepted=1),
    ),
    RowCase(
        "latin1_bytes_in_events_csv",
        "events/latin1.csv",
        (
            f"{EVENTS_HEADER}\nl1-Jos\xe9,{GOOD_ITEM},{T},view,,\nl1-Jose,{GOOD_ITEM},{T},view,,\n"
        ).encode("latin-1"),
        events=Expect(2, {"invalid_encoding": 1}, accepted=1),
    ),
    RowCase(
        "json_line_not_an_object",
        "events/not_objects.jsonl",
        (
            f'{{"user_id": "jo-u1", "item_id": "{GOOD_ITEM}", "ts": "{T}"}}\n'
            '[1, 2]\n42\n"text"\nnull\n'
            '{"user_id": "jo-u2", "item_id": \n'  # cut short
        ).encode(),
        events=Expect(6, {"malformed_row": 5}, accepted=1),
    ),
    RowCase(
        "header_only_csv",
        "events/header_only.csv",
        f"{EVENTS_HEADER}\n".encode(),
        events=Expect(0),  # an empty export next to real ones adds nothing and breaks nothing
    ),
    RowCase(
        "csv_with_bom",
        "events/bom.csv",
        ("\ufeff" + csv_text(EVENTS_HEADER, [("bom-u1", GOOD_ITEM, T, "view", "", "")])).encode(),
        events=Expect(1, accepted=1),  # the BOM is not part of the first column's name
    ),
    RowCase(
        "wrong_types_in_parquet",
        "events/typed.parquet",
        _parquet(
            pa.table(
                {
                    "USER_ID": ["pq-u1", "pq-u2", "pq-u3"],
                    "Item_Id": [GOOD_ITEM] * 3,
                    "ts": pa.array([epoch(DAY, 100), epoch(DAY, 200), epoch(DAY, 300)], pa.int64()),
                    "event_type": ["purchase"] * 3,
                    "quantity": ["1", "lots", "2"],  # text where a number belongs
                    "value": [1.5, 2.5, float("nan")],
                    "extra": [1, 2, 3],
                }
            )
        ),
        events=Expect(3, {"invalid_quantity": 1, "invalid_value": 1}, accepted=1),
    ),
    RowCase(
        "non_product_items_and_their_events",
        "items/fees.csv",
        csv_text(ITEMS_HEADER, [("POST", "POSTAGE", "", "18.00", "2024-04-01", "true")]).encode(),
        items=Expect(1, {"non_product": 1}),
    ),
    RowCase(
        "events_for_non_product_items",
        "events/fees.csv",
        _ev("fee-", [("u1", "POST", T, "purchase", "1", "18.00")]),
        events=Expect(1, {"non_product_item": 1}),
    ),
    RowCase(
        "duplicate_items",
        "items/dup_items.csv",
        csv_text(
            ITEMS_HEADER,
            [
                ("dupitem", "Lamp", "Home", "9.99", "2024-04-01", "false"),
                ("dupitem", "Lamp (re-sent)", "Home", "10.99", "2024-04-01", "false"),
            ],
        ).encode(),
        items=Expect(2, {"duplicate_item": 1}, accepted=1),
    ),
    RowCase(
        "bad_item_rows",
        "items/bad_items.csv",
        csv_text(
            ITEMS_HEADER,
            [
                ("", "No id", "Home", "1.00", "2024-04-01", "false"),
                ("   ", "Blank id", "Home", "1.00", "2024-04-01", "false"),
                ("badprice", "Price is text", "Home", "free", "2024-04-01", "false"),
                ("nanprice", "Price is NaN", "Home", "NaN", "2024-04-01", "false"),
            ],
        ).encode(),
        items=Expect(4, {"missing_item_id": 2, "invalid_price": 2}),
    ),
    RowCase(
        "latin1_bytes_in_items_csv",
        "items/latin1.csv",
        csv_text(ITEMS_HEADER, [("latin1item", "Caf\xe9 mug", "Kitchen", "4.00", "", "")]).encode(
            "latin-1"
        ),
        items=Expect(1, {"invalid_encoding": 1}),
    ),
    RowCase(
        "very_long_title",
        "items/long_title.csv",
        csv_text(ITEMS_HEADER, [("longtitle", LONG_TITLE, "Books", "3.00", "", "")]).encode(),
        items=Expect(1, accepted=1),  # kept, the title cut to max_title_chars (tested below)
    ),
    RowCase(
        "item_first_seen_after_run_date",
        "items/late.jsonl",
        (
            f'{{"item_id": "lateitem", "title": "Next week", "first_seen": '
            f'"{(DS + timedelta(days=3)).isoformat()}"}}\n'
        ).encode(),
        items=Expect(1, deferred=1),
    ),
]


# --------------------------------------------------------------------------- the shared run


@dataclass
class Catalogue:
    landing: Path
    warehouse: Path
    record: dict[str, Any]
    bronze: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    silver: pd.DataFrame
    catalogue: pd.DataFrame


@pytest.fixture(scope="module")
def catalogue(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    base = tmp_path_factory.mktemp("bad-input")
    landing = write_base_landing(base / "landing")
    for case in ROW_CASES:
        write(landing / case.path, case.content)
    warehouse = base / "warehouse"
    record = ingest_clean(spark, landing, warehouse)

    def read(table: str) -> pd.DataFrame:
        return pd.DataFrame(table_rows(warehouse / table / f"ds={DS.isoformat()}"))

    return Catalogue(
        landing=landing,
        warehouse=warehouse,
        record=record,
        bronze={"events": read("bronze_events"), "items": read("bronze_items")},
        quarantine=read("quarantine"),
        silver=read("silver_events"),
        catalogue=read("catalogue"),
    )


def _from_file(df: pd.DataFrame, path: str) -> pd.DataFrame:
    if df.empty:
        return df
    return df[df["source_file"].str.endswith("/" + path)]


@pytest.mark.parametrize("case", ROW_CASES, ids=lambda c: c.kind)
def test_row_case(catalogue: Catalogue, case: RowCase) -> None:
    table = "events" if case.events else "items"
    expect = case.events or case.items
    assert expect is not None
    bronze = _from_file(catalogue.bronze[table], case.path)
    assert len(bronze) == expect.rows_in, "every row that arrived is in bronze"
    q = _from_file(catalogue.quarantine, case.path)
    q = q[q["table"] == table]
    assert Counter(q["reason"]) == Counter(expect.quarantined)
    assert q["record"].notna().all(), "the original record is kept with the reason"
    if table == "events":
        end = pd.Timestamp(DS + timedelta(days=1), tz="UTC")
        broken_clock = end + pd.Timedelta(days=MAX_FUTURE_DAYS)
        ts = pd.to_datetime(bronze["ts"], utc=True)
        deferred = int(((ts >= end) & (ts < broken_clock)).sum()) if expect.rows_in else 0
        # cases give user ids a "<prefix>-" so their accepted rows can be found in silver
        prefixes = {str(u).split("-")[0] + "-" for u in bronze["user_id"].dropna()}
        accepted = (
            catalogue.silver[catalogue.silver["user_id"].str.startswith(tuple(prefixes))]
            if prefixes
            else catalogue.silver.iloc[:0]
        )
    else:
        first_seen = pd.to_datetime(bronze["first_seen"])
        deferred = int((first_seen > pd.Timestamp(DS)).sum())
        ids = set(bronze["item_id"].dropna())
        accepted = catalogue.catalogue[catalogue.catalogue["item_id"].isin(ids)]
    assert deferred == expect.deferred
    assert len(accepted) == expect.accepted
    assert expect.rows_in == len(q) + len(accepted) + deferred


def test_accounting_is_recorded_and_adds_up(catalogue: Catalogue) -> None:
    counts = run_record(catalogue.warehouse, DS, "clean")["counts"]
    assert counts == catalogue.record["counts"]
    base_events = len((catalogue.landing / "events" / "base.csv").read_text().splitlines()) - 1
    n_events = base_events + sum(c.events.rows_in for c in ROW_CASES if c.events)
    n_items = 12 + sum(c.items.rows_in for c in ROW_CASES if c.items)
    assert counts["events_in"] == n_events == len(catalogue.bronze["events"])
    assert counts["items_in"] == n_items == len(catalogue.bronze["items"])
    for kind in ("events", "items"):
        parts = [counts[f"{kind}_{p}"] for p in ("accepted", "quarantined", "deferred")]
        assert sum(parts) == counts[f"{kind}_in"], (kind, counts)
    q = catalogue.quarantine
    assert counts["events_quarantined"] == int((q["table"] == "events").sum())
    assert counts["items_quarantined"] == int((q["table"] == "items").sum())
    assert counts["events_accepted"] == len(catalogue.silver)
    assert counts["items_accepted"] == len(catalogue.catalogue)
    reasons = catalogue.record["quarantine_reasons"]
    assert (
        sum(v for k, v in reasons.items() if k.startswith("events/"))
        == counts["events_quarantined"]
    )
    assert q["reason"].notna().all() and q["source_file"].notna().all()


def test_very_long_title_is_cut_not_lost(catalogue: Catalogue) -> None:
    row = catalogue.catalogue.set_index("item_id").loc["longtitle"]
    assert row["title"] == LONG_TITLE[:MAX_TITLE_CHARS]
    bronze = catalogue.bronze["items"].set_index("item_id").loc["longtitle"]
    assert bronze["title"] == LONG_TITLE, "bronze keeps the full text"


def test_quarantine_keeps_the_original_text(catalogue: Catalogue) -> None:
    q = _from_file(catalogue.quarantine, "events/malformed.csv")
    records = " ".join(q["record"])
    assert "surplus,fields" in records  # the raw line of a malformed row
    q = _from_file(catalogue.quarantine, "events/non_finite.csv")
    assert any('"quantity":"NaN"' in r for r in q["record"])


# --------------------------------------------------------------------------- run-stopping cases


def _truncated_gzip_csv() -> bytes:
    rows = [(f"tg-u{i}", GOOD_ITEM, T, "view", "", "") for i in range(20_000)]
    data = gzip.compress(csv_text(EVENTS_HEADER, rows).encode(), mtime=0)
    return data[: len(data) // 2]  # the header decompresses; the cut shows only on a full read


def _truncated_parquet() -> bytes:
    data = _parquet(pa.table({"user_id": ["u"], "item_id": [GOOD_ITEM], "ts": [T]}))
    return data[: len(data) // 2]


@dataclass(frozen=True)
class ErrorCase:
    kind: str
    files: dict[str, bytes | None]  # rel path -> content; None removes the base file or folder
    match: tuple[str, ...]  # substrings the error message must contain


ERROR_CASES = [
    ErrorCase("empty_landing_folder", {"events": None, "items": None}, ("events", "no data files")),
    ErrorCase("missing_items_folder", {"items": None}, ("/items", "folder is missing or empty")),
    ErrorCase(
        "empty_events_folder",
        {"events/base.csv": None},
        ("/events", "no data files found"),
    ),
    ErrorCase(
        "renamed_column_schema_drift",
        {"events/drift.csv": csv_text("customer_id,item_id,ts", [("u1", GOOD_ITEM, T)]).encode()},
        ("events/drift.csv", "missing required column 'user_id'", "customer_id"),
    ),
    ErrorCase(
        "renamed_item_column_in_jsonl",
        {"items/more.jsonl": b'{"item_id": "x1", "name": "Lamp"}\n'},
        ("items/more.jsonl", "missing required column 'title'"),
    ),
    ErrorCase(
        "truncated_parquet",
        {"events/cut.parquet": _truncated_parquet()},
        ("events/cut.parquet", "unreadable parquet file"),
    ),
    ErrorCase(
        "truncated_gzip_csv",
        {"events/cut.csv.gz": _truncated_gzip_csv()},
        ("events/cut.csv.gz", "unreadable file"),
    ),
    ErrorCase(
        "gz_name_but_not_gzip",
        {"events/plain.csv.gz": csv_text(EVENTS_HEADER, []).encode()},
        ("events/plain.csv.gz", "unreadable csv file"),
    ),
    ErrorCase(
        "unsupported_file_extension",
        {"events/export.xlsx": b"PK\x03\x04 not really a spreadsheet"},
        ("events/export.xlsx", "unsupported file type"),
    ),
    ErrorCase(
        "zero_byte_csv",
        {"events/empty.csv": b""},
        ("events/empty.csv", "missing required column 'user_id'"),
    ),
    ErrorCase(
        "jsonl_file_not_utf8",
        {"items/latin1.jsonl": '{"item_id": "x", "title": "Caf\xe9"}\n'.encode("latin-1")},
        ("items/latin1.jsonl", "missing required column 'item_id'"),
    ),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.kind)
def test_contract_breach_stops_the_run(
    spark: Any, base_landing: Path, tmp_path: Path, case: ErrorCase
) -> None:
    for rel, content in case.files.items():
        target = base_landing / rel
        if content is None:
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
        else:
            write(target, content)
    warehouse = tmp_path / "warehouse"
    cfg = IngestConfig(ds=DS, warehouse=str(warehouse), landing=str(base_landing))
    with pytest.raises(LandingContractError) as err:
        run_stage(spark, "ingest", cfg)
    message = str(err.value)
    for part in case.match:
        assert part in message, f"{part!r} not in {message!r}"
    # nothing published, nothing left half-written
    assert published_partitions(warehouse) == {}
    assert leftovers(warehouse) == []


def test_the_job_entry_point_exits_with_the_not_retryable_code(
    spark: Any, base_landing: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What spark-submit sees: exit status 65 and one reason line naming the file and column."""
    write(base_landing / "events/drift.csv", csv_text("customer_id,item_id,ts", [("u1", "x", "t")]))
    warehouse = tmp_path / "warehouse"
    cfg = IngestConfig(ds=DS, warehouse=str(warehouse), landing=str(base_landing))
    rc = ingest_stage.main(["--config-json", json.dumps(cfg.to_dict())])
    assert rc == PERMANENT_EXIT_CODE
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith(ERROR_PREFIX)]
    assert len(lines) == 1, lines
    assert f"ingest ds={DS}: LandingContractError:" in lines[0]
    assert "events/drift.csv" in lines[0] and "'user_id'" in lines[0]
    assert published_partitions(warehouse) == {}
    assert leftovers(warehouse) == []


# --------------------------------------------------------------------------- real mess


@pytest.mark.realdata
def test_online_retail_excerpt(spark: Any, tmp_path: Path) -> None:
    """The first 3,000 rows of UCI Online Retail through the adapter, ingest and clean."""
    if not ONLINE_RETAIL.is_file():
        pytest.skip(f"{ONLINE_RETAIL} is not available")
    from bench.adapters import online_retail

    src = tmp_path / "src"
    src.mkdir()
    raw = pd.read_csv(ONLINE_RETAIL, dtype=str, keep_default_na=False, nrows=3000)
    raw.to_csv(src / "online_retail.csv.gz", index=False, compression="gzip")
    landing = tmp_path / "landing"
    online_retail(src, landing)
    ds = date(2010, 12, 1)
    record = ingest_clean(spark, landing, tmp_path / "warehouse", ds)

    counts = record["counts"]
    assert counts["events_in"] == len(raw)
    assert counts["events_in"] == (
        counts["events_accepted"] + counts["events_quarantined"] + counts["events_deferred"]
    )
    reasons = record["quarantine_reasons"]
    for reason in (
        "events/missing_user_id",  # no CustomerID
        "events/non_positive_quantity",  # cancellations (InvoiceNo C...)
        "events/non_product_item",  # POST, M, DOT, ...
        "events/duplicate_event",  # the same invoice line twice
        "items/non_product",
    ):
        assert reasons.get(reason, 0) > 0, (reason, reasons)

    silver = pd.DataFrame(table_rows(tmp_path / "warehouse" / "silver_events" / f"ds={ds}"))
    assert (silver["quantity"] > 0).all() and (silver["value"] > 0).all()
    assert not silver["item_id"].isin(["POST", "M", "DOT", "D", "C2"]).any()
    # every cancellation that names a customer is quarantined, none is accepted
    cancelled = raw[raw["InvoiceNo"].str.startswith("C") & (raw["CustomerID"].str.strip() != "")]
    assert len(cancelled) > 0
    assert (pd.to_numeric(cancelled["Quantity"]) < 0).all()
    # zero prices: the adapter keeps them and clean quarantines them
    zero = raw[(pd.to_numeric(raw["UnitPrice"]) <= 0) & (raw["CustomerID"].str.strip() != "")]
    if len(zero):
        assert reasons.get("events/non_positive_price", 0) > 0, reasons
    dupes = int(raw.duplicated().sum())
    assert reasons["events/duplicate_event"] >= 1 and dupes >= 1
