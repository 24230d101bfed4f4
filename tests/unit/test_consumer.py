"""The example consumer: one segment of a published partition to CSV, checked against the manifest.

The partition is written here with pyarrow, as the pipeline lays it out (part files, `_SUCCESS`,
`_manifest.json`); the expected CSV is computed with zlib and pandas, not with the consumer's code.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from longtail import consumer
from longtail import manifest as mf

DS = date(2026, 1, 31)


def _partition(wh: Path, n_users: int = 40, top_n: int = 3, lie: int = 0, version: int = 2) -> Path:
    """A published partition; version 1 as written before the reason columns existed."""
    part = wh / "recommendations" / f"ds={DS}"
    part.mkdir(parents=True)
    rows = [
        (f"u{u:03d}", r, f"i{(u + r) % 17:02d}", 1.0 / r, "als", "fusion-x", r % 2 == 0)
        + ((f"h{u % 5}", "similar_taste") if r < top_n else (None, None))
        for u in range(n_users)
        for r in range(1, top_n + 1)
    ]
    names = [n for n, _ in mf.schema_columns("recommendations")]
    if version == 1:
        names, rows = names[:7], [r[:7] for r in rows]
    table = pa.table(
        [
            pa.array(c, pa.string() if n.startswith("reason") else None)
            for n, c in zip(names, zip(*rows, strict=True), strict=True)
        ],
        names=names,
    )
    table = table.cast(
        pa.schema([(n, pa.int32() if n == "rank" else table.schema.field(n).type) for n in names])
    )
    half = len(rows) // 2
    pq.write_table(table.slice(0, half), part / "part-00000.parquet")
    pq.write_table(table.slice(half), part / "part-00001.parquet")
    (part / "_SUCCESS").write_text("")
    files = [
        {"path": p.name, "bytes": p.stat().st_size, "sha256": "-"}
        for p in sorted(part.glob("part-*"))
    ]
    doc = mf.manifest_document(
        table="recommendations",
        ds=DS,
        rows=len(rows) + lie,
        files=files,
        run_id="r",
        users=n_users,
        top_n=top_n,
        model_version="fusion-x",
    )
    if version == 1:
        doc["schema_version"], doc["schema"] = 1, doc["schema"][:7]
    (part / mf.MANIFEST).write_text(json.dumps(doc))
    (wh / "recommendations" / mf.LATEST).write_text(json.dumps(mf.latest_document(doc, str(part))))
    return part


def test_exports_exactly_one_segment(tmp_path: Path) -> None:
    part = _partition(tmp_path / "wh")
    out = consumer.export_segment(str(part), 3, str(tmp_path / "outbox"))
    csv = tmp_path / "outbox" / "recommendations" / "segment=3" / f"ds={DS}.csv"
    assert out["csv"] == str(csv)
    got = pd.read_csv(csv, dtype={"user_id": str, "item_id": str})

    frame = pq.read_table(sorted(part.glob("part-*.parquet"))[0]).to_pandas()
    frame = pd.concat([frame, pq.read_table(sorted(part.glob("part-*.parquet"))[1]).to_pandas()])
    mine = frame[[zlib.crc32(u.encode()) % 10 == 3 for u in frame["user_id"]]]
    expected = mine[list(consumer.COLUMNS)].sort_values(["user_id", "rank"])
    assert 0 < len(got) < len(frame)
    pd.testing.assert_frame_equal(  # a null reason: None in Parquet, an empty CSV field
        got.reset_index(drop=True).fillna(""),
        expected.reset_index(drop=True).fillna(""),
        check_dtype=False,
    )
    assert (out["rows"], out["users"], out["ds"]) == (len(got), got["user_id"].nunique(), str(DS))


def test_a_schema_v1_partition_exports_with_null_reasons(tmp_path: Path) -> None:
    part = _partition(tmp_path / "wh", version=1)
    assert pq.read_schema(sorted(part.glob("part-*.parquet"))[0]).names[-1] == "is_long_tail"
    data = consumer.read_partition(str(part), json.loads((part / mf.MANIFEST).read_text()))
    assert data.schema.names == [n for n, _ in mf.schema_columns("recommendations")]
    assert data.column("reason").null_count == data.num_rows == 120
    out = consumer.export_segment(str(part), 3, str(tmp_path / "outbox"))
    got = pd.read_csv(out["csv"], dtype={"user_id": str, "item_id": str})
    assert list(got.columns) == list(consumer.COLUMNS) and len(got) == out["rows"] > 0
    assert got["reason"].isna().all() and got["reason_item_id"].isna().all()


def test_a_partition_that_disagrees_with_its_manifest_is_not_exported(tmp_path: Path) -> None:
    part = _partition(tmp_path / "wh", lie=1)
    with pytest.raises(consumer.ExportError, match="in its manifest"):
        consumer.export_segment(str(part), 0, str(tmp_path / "outbox"))
    assert not (tmp_path / "outbox").exists()


def test_run_by_hand_takes_the_latest_partition(tmp_path: Path) -> None:
    part = _partition(tmp_path / "wh")
    assert consumer.latest_partition(str(tmp_path / "wh"))["path"] == str(part)
    assert consumer.default_outbox(str(part)) == str(tmp_path / "outbox")
    with pytest.raises(consumer.ExportError, match="no published partition"):
        consumer.latest_partition(str(tmp_path / "empty"))


@dataclass
class _Event:
    extra: dict[str, Any]
    timestamp: datetime


def test_the_newest_triggering_event_wins() -> None:
    events = [
        _Event({"path": "/b"}, datetime(2026, 2, 1, 2, tzinfo=UTC)),
        _Event({"path": "/a"}, datetime(2026, 2, 1, 1, tzinfo=UTC)),
    ]
    assert consumer.newest_extra(events) == {"path": "/b"}
    assert consumer.newest_extra([]) is None


def _audience_partition(wh: Path) -> Path:
    """An item_audiences partition: items n0, n1 new (3 shoppers each), t0 long-tail only."""
    part = wh / "item_audiences" / f"ds={DS}"
    part.mkdir(parents=True)
    rows = [
        (
            item,
            r,
            f"u{(7 * r + k) % 11:02d}",
            1.0 - r / 10,
            item != "t0",
            f"h{r}" if r < 3 else None,
        )
        for k, item in enumerate(("t0", "n1", "n0"))
        for r in (1, 2, 3)
    ]
    table = pa.Table.from_pylist(
        [
            dict(zip([n for n, _ in mf.schema_columns("item_audiences")], r, strict=True))
            for r in rows
        ],
        schema=mf.arrow_schema("item_audiences"),
    )
    pq.write_table(table, part / "part-00000.parquet")
    doc = mf.manifest_document(
        table="item_audiences",
        ds=DS,
        rows=len(rows),
        files=[{"path": "part-00000.parquet", "bytes": 1, "sha256": "-"}],
        run_id="r",
        top_n=3,
        model_version="audience-x",
    )
    (part / mf.MANIFEST).write_text(json.dumps(doc))
    return part


def test_exports_the_new_items_audiences_in_rank_order(tmp_path: Path) -> None:
    part = _audience_partition(tmp_path / "wh")
    out = consumer.export_audiences(str(part), str(tmp_path / "outbox"))
    got = pd.read_csv(out["csv"], dtype={"user_id": str, "reason_item_id": str})
    assert out["csv"] == str(tmp_path / "outbox" / "item_audiences" / f"ds={DS}.csv")
    assert list(got.columns) == list(consumer.AUDIENCE_COLUMNS)
    # n0 and n1 only (t0 is long-tail, not new), each ranked 1..3; u-ids as written above
    assert got[["item_id", "rank", "user_id"]].values.tolist() == [
        ["n0", 1, "u09"],
        ["n0", 2, "u05"],
        ["n0", 3, "u01"],
        ["n1", 1, "u08"],
        ["n1", 2, "u04"],
        ["n1", 3, "u00"],
    ]
    assert got["reason_item_id"].isna().tolist() == [False, False, True] * 2
    assert (out["items"], out["rows"], out["model_version"]) == (2, 6, "audience-x")
    everything = consumer.export_audiences(str(part), str(tmp_path / "all"), new_only=False)
    assert everything["rows"] == 9 and everything["items"] == 3


def test_an_audience_export_refuses_another_table(tmp_path: Path) -> None:
    part = _partition(tmp_path / "wh")
    with pytest.raises(consumer.ExportError, match="not item_audiences"):
        consumer.export_audiences(str(part), str(tmp_path / "outbox"))
