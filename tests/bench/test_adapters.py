"""Dataset adapters: tiny literal sources in the real file formats -> landing contract Parquet."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench import adapters
from bench.adapters import DATASETS, adapt, main
from longtail.columns import (
    BRAND,
    CATEGORY,
    DESCRIPTION,
    EVENT_TYPE,
    FIRST_SEEN,
    ITEM_ID,
    PRICE,
    QUANTITY,
    TITLE,
    TS,
    USER_ID,
    VALUE,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATASETS = REPO_ROOT / ".." / "shared" / "datasets"


def _write(path: Path, text: str, *, gz: bool = False, crlf: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.replace("\n", "\r\n") if crlf else text
    if gz:
        with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
            f.write(data)
    else:
        path.write_text(data, encoding="utf-8", newline="")


def _read(out: Path, kind: str) -> pa.Table:
    return pq.read_table(out / kind / "part-0.parquet")


def _rows(out: Path, kind: str) -> list[dict]:
    return _read(out, kind).to_pylist()


def _by_id(out: Path) -> dict[str, dict]:
    return {r[ITEM_ID]: r for r in _rows(out, "items")}


# --------------------------------------------------------------------------- fixtures

RETAIL_CSV = """\
InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536366,85123A,WHITE HANGING HEART T-LIGHT HOLDER,2.0,2010-12-02 09:00:00,2.95,17850.0,United Kingdom
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6.0,2010-12-01 08:26:00,2.55,17850,United Kingdom
536367,85123A,CREAM HANGING HEART T-LIGHT HOLDER,1.0,2010-12-03 10:00:00,0.0,13047,United Kingdom
C536379,85123A,WHITE HANGING HEART T-LIGHT HOLDER,-1.0,2010-12-04 09:41:00,2.55,17850,United Kingdom
536414,22139,,56.0,2010-12-01 11:52:00,0.0,,United Kingdom
536415,22139,"RETROSPOT TEA SET, CERAMIC",1.0,2010-12-05 10:00:00,4.95,12583,France
536416,22139,CHILDRENS TEA SET,1.0,2010-12-05 11:00:00,3.75,12583,France
536380,POST,POSTAGE,3.0,2010-12-01 08:45:00,18.0,12583,France
"""

BEAUTY_INTERACTIONS = """\
user_id,item_id,timestamp,seq_pos
0,2,1405296000,0
0,1,1405296000,1
1,1,1023840000,0
1,2,1024185600,1
"""
BEAUTY_ITEMS = """\
item_id,title
1,"Jason Shampoo, Tea Tree, 17.5 Ounce"
2,Xtreme Brite Brightening Gel 1oz.
"""

OFFICE = {
    "train.csv": "user_id\titem_id\ttime\n1\t1\t970185600\n2\t2\t983404800\n1\t2\t983404800\n",
    "dev.csv": "user_id\titem_id\ttime\tneg_items\n"
    "1\t3\t1070582400\t[2, 1]\n2\t1\t1070582400\t[3]\n",
    "test.csv": "user_id\titem_id\ttime\tneg_items\n"
    "1\t4\t1406073600\t[1, 2]\n2\t3\t1406073600\t[4]\n",
    "Office.item2index": "B0000AG93P\t1\nB00004VVIX\t2\nB000059RDW\t3\nB00006881R\t4\n",
    "Office.text": (
        "id\ttext\n"
        "B0000AG93P\tHP 78 Tri-Color Printer Cartridge Ink HP\n"
        'B00004VVIX\tAvery 5160 "Easy Peel" Address Labels Labels Avery\n'
        "B000059RDW\tTexas Instruments TI-1795 SV Calculator Basic Texas Instruments\n"
        "B00006881R\tTeleZapper TZ 900 Office Electronics Privacy\n"
    ),
    "item_meta.csv": (
        "item_id\ti_category\ti_brand\tr_complement\tr_substitute\n"
        "3\t1\t1\t[4, 2]\t[]\n1\t6\t2\t[]\t[3]\n2\t0\t7\t[]\t[]\n4\t0\t18\t[1]\t[]\n"
    ),
}

ML_RATINGS = """\
userId,movieId,rating,timestamp
1,1,4.0,964982703
1,3,4.5,964981247
2,1,0.5,1445714994
"""
ML_MOVIES = """\
movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy
3,"American President, The (1995)",Comedy|Drama|Romance
7,NA,(no genres listed)
"""
ML_TAGS = """\
userId,movieId,tag,timestamp
2,1,pixar,1445714994
2,1,fun,1445714996
3,1,pixar,1445714999
3,1,Highly quotable,1445715000
"""


def _make_source(root: Path, name: str) -> Path:
    """Build a tiny copy of dataset `name` under root/name; return root (the data_dir)."""
    src = root / name
    if name == "online-retail":
        _write(src / "online_retail.csv.gz", RETAIL_CSV, gz=True)
    elif name == "amazon-beauty-2014":
        _write(src / "interactions.csv.gz", BEAUTY_INTERACTIONS, gz=True)
        _write(src / "items.csv.gz", BEAUTY_ITEMS, gz=True)
    elif name == "amazon-office-2014":
        for fname, text in OFFICE.items():
            _write(src / fname, text)
    elif name == "ml-latest-small":
        _write(src / "ratings.csv", ML_RATINGS, crlf=True)
        _write(src / "movies.csv", ML_MOVIES, crlf=True)
        _write(src / "tags.csv", ML_TAGS, crlf=True)
    else:
        raise AssertionError(name)
    return root


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    for name in DATASETS:
        _make_source(root, name)
    return root


# --------------------------------------------------------------------------- online-retail


def test_online_retail_keeps_every_row(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "retail"
    summary = adapt("online-retail", data_dir, out)
    assert summary["events"] == 8 and summary["items"] == 3 and summary["skipped"] is False

    table = _read(out, "events")
    assert table.schema.field(QUANTITY).type == pa.float64()
    assert table.schema.field(VALUE).type == pa.float64()
    assert table.schema.field(TS).type == pa.string()
    rows = table.to_pylist()
    assert rows[0] == {
        USER_ID: "17850",
        ITEM_ID: "85123A",
        TS: "2010-12-01T08:26:00Z",
        EVENT_TYPE: "purchase",
        QUANTITY: 6.0,
        VALUE: 2.55,
        "invoice_no": "536365",
        "country": "United Kingdom",
    }
    assert [r[TS] for r in rows] == sorted(r[TS] for r in rows)
    by_invoice = {r["invoice_no"]: r for r in rows}
    assert by_invoice["C536379"][QUANTITY] == -1.0  # cancellation kept
    assert by_invoice["536414"][USER_ID] is None  # missing CustomerID kept
    assert by_invoice["536366"][USER_ID] == "17850"  # "17850.0" -> "17850"


def test_online_retail_items(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "retail"
    adapt("online-retail", data_dir, out)
    items = _by_id(out)
    heart = items["85123A"]
    assert heart[TITLE] == "WHITE HANGING HEART T-LIGHT HOLDER"  # most frequent wins
    assert heart[PRICE] == pytest.approx(2.55)  # median of positive prices 2.55, 2.95, 2.55
    assert heart[FIRST_SEEN] == "2010-12-01"
    assert heart["non_product"] == "false"
    assert heart[DESCRIPTION] == "" and heart[CATEGORY] == ""
    tea = items["22139"]
    assert tea[TITLE] == "CHILDRENS TEA SET"  # 1-1 tie: alphabetical; empty description ignored
    assert tea[PRICE] == pytest.approx(4.35)
    post = items["POST"]
    assert post["non_product"] == "true" and post[TITLE] == "POSTAGE"


# --------------------------------------------------------------------------- amazon


def test_amazon_beauty(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "beauty"
    summary = adapt("amazon-beauty-2014", data_dir, out)
    assert (summary["events"], summary["items"], summary["users"]) == (4, 2, 2)
    rows = _rows(out, "events")
    assert rows[0] == {
        USER_ID: "u1",
        ITEM_ID: "i1",
        TS: "1023840000",
        EVENT_TYPE: "review",
        "seq_pos": "0",
    }
    assert [(r[USER_ID], r[ITEM_ID]) for r in rows[2:]] == [("u0", "i1"), ("u0", "i2")]
    items = _by_id(out)
    assert items["i1"] == {ITEM_ID: "i1", TITLE: "Jason Shampoo, Tea Tree, 17.5 Ounce"}


def test_amazon_office_includes_dev_and_test(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "office"
    summary = adapt("amazon-office-2014", data_dir, out)
    assert (summary["events"], summary["items"]) == (7, 4)
    rows = _rows(out, "events")
    assert {r[EVENT_TYPE] for r in rows} == {"review"}
    assert [r["split"] for r in rows].count("dev") == 2
    assert rows[-1] == {
        USER_ID: "2",
        ITEM_ID: "3",
        TS: "1406073600",
        EVENT_TYPE: "review",
        "split": "test",
    }
    assert "neg_items" not in _read(out, "events").column_names
    items = _by_id(out)
    assert items["2"] == {
        ITEM_ID: "2",
        TITLE: 'Avery 5160 "Easy Peel" Address Labels Labels Avery',
        CATEGORY: "c0",
        BRAND: "b7",
        "asin": "B00004VVIX",
    }


# --------------------------------------------------------------------------- movielens


def test_movielens(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ml"
    summary = adapt("ml-latest-small", data_dir, out)
    assert (summary["events"], summary["items"]) == (3, 3)
    rows = _rows(out, "events")
    assert rows[0] == {
        USER_ID: "1",
        ITEM_ID: "3",
        TS: "964981247",
        EVENT_TYPE: "rating",
        VALUE: 4.5,
    }
    assert rows[-1][VALUE] == 0.5
    items = _by_id(out)
    assert items["1"][DESCRIPTION] == "Highly quotable, fun, pixar"
    assert items["1"][CATEGORY] == "Adventure|Animation|Children|Comedy|Fantasy"
    assert items["3"][TITLE] == "American President, The (1995)"
    assert items["3"][DESCRIPTION] == ""
    assert items["7"][TITLE] == "NA"  # a literal title, not a missing value


# --------------------------------------------------------------------------- driver


@pytest.mark.parametrize("name", list(DATASETS))
def test_deterministic_bytes(name: str, data_dir: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    adapt(name, data_dir, first)
    adapt(name, data_dir, second)
    for kind in ("events", "items"):
        path = Path(kind) / "part-0.parquet"
        assert (first / path).read_bytes() == (second / path).read_bytes()


def test_idempotent_unless_source_changes_or_forced(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ml"
    assert adapt("ml-latest-small", data_dir, out)["skipped"] is False
    assert adapt("ml-latest-small", data_dir, out)["skipped"] is True
    assert adapt("ml-latest-small", data_dir, out, force=True)["skipped"] is False
    ratings = data_dir / "ml-latest-small" / "ratings.csv"
    st = ratings.stat()
    os.utime(ratings, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert adapt("ml-latest-small", data_dir, out)["skipped"] is False
    assert sorted(p.name for p in out.iterdir()) == ["_ADAPTED", "events", "items"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_missing_file_is_named(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "amazon-office-2014" / "Office.text").unlink()
    with pytest.raises(FileNotFoundError, match=r"Office\.text"):
        adapt("amazon-office-2014", data_dir, tmp_path / "office")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        adapt("online-retail", tmp_path / "nowhere", tmp_path / "retail")
    assert not (tmp_path / "office").exists()


def test_failed_rebuild_keeps_previous_output(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "beauty"
    adapt("amazon-beauty-2014", data_dir, out)

    def boom(src: Path, dst: Path) -> dict:
        (dst / "events").mkdir()
        raise RuntimeError("disk full")

    monkeypatch.setitem(adapters.DATASETS, "amazon-beauty-2014", boom)
    with pytest.raises(RuntimeError):
        adapt("amazon-beauty-2014", data_dir, out, force=True)
    assert len(_rows(out, "events")) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beauty", "datasets"]


def test_cli(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "landing"
    assert main(["all", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(DATASETS)
    assert '"skipped": false' in capsys.readouterr().out
    assert main(["online-retail", "--data-dir", str(tmp_path), "--out", str(out)]) == 2


# --------------------------------------------------------------------------- real data

REAL_COUNTS = {  # from each folder's PROVENANCE.md
    "online-retail": (541_909, 4_070),
    "amazon-beauty-2014": (198_215, 12_086),
    "amazon-office-2014": (53_258, 2_420),
    "ml-latest-small": (100_836, 9_742),
}


@pytest.mark.realdata
@pytest.mark.parametrize("name", list(REAL_COUNTS))
def test_real_data_row_counts(name: str, tmp_path: Path) -> None:
    if not (SHARED_DATASETS / name).is_dir():
        pytest.skip(f"{SHARED_DATASETS / name} is absent")
    summary = adapt(name, SHARED_DATASETS, tmp_path / name)
    assert (summary["events"], summary["items"]) == REAL_COUNTS[name]
    assert _read(tmp_path / name, "events").num_rows == REAL_COUNTS[name][0]
    assert _read(tmp_path / name, "items").num_rows == REAL_COUNTS[name][1]
