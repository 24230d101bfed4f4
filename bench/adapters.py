"""Adapters from the shared public datasets to the pipeline's landing contract.

Each adapter writes ``events/part-0.parquet`` and ``items/part-0.parquet`` so that benchmarks run
the real pipeline on real data. The online-retail adapter deliberately keeps the source mess
(cancellations, missing customers, non-product codes): cleaning is the pipeline's job, and a
benchmark that pre-cleans would hide its bugs. Output is deterministic (stable sort, no clock
values, no pandas metadata) so reruns produce byte-identical Parquet.

Usage: ``python -m bench.adapters NAME --data-dir ../shared/datasets --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

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

# Bump when the output of any adapter changes, so stale landing folders are rebuilt.
ADAPTER_VERSION = 1
MARKER = "_ADAPTED"
NON_PRODUCT = "non_product"
_FLOAT_COLUMNS = frozenset({QUANTITY, VALUE, PRICE})
# Online Retail product codes: five digits, optionally a letter suffix (85123A, 15056bl).
_PRODUCT_CODE = re.compile(r"\d{5}[A-Za-z]*")

Adapter = Callable[[Path, Path], dict]


# --------------------------------------------------------------------------- helpers


def _require(src_dir: Path, names: Sequence[str]) -> list[Path]:
    """Fail early with the missing file's path, not a pandas traceback mid-conversion."""
    paths = [src_dir / n for n in names]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"dataset file missing: {p}")
    return paths


def _read_str(path: Path, **kwargs: object) -> pd.DataFrame:
    """Read a delimited file as strings; keep "NA"/"null" texts as they are (real titles)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, **kwargs)


def _to_table(df: pd.DataFrame) -> pa.Table:
    """Strings everywhere except the numeric contract columns; no pandas metadata."""
    fields = [pa.field(c, pa.float64() if c in _FLOAT_COLUMNS else pa.string()) for c in df.columns]
    arrays = []
    for c in df.columns:
        col = df[c]
        if c in _FLOAT_COLUMNS:
            arrays.append(pa.array(pd.to_numeric(col).to_numpy(dtype=np.float64)))
        else:
            values = col.astype(object).where(col.notna(), None)
            arrays.append(pa.array(values.tolist(), type=pa.string()))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _write(df: pd.DataFrame, out_dir: Path, kind: str) -> int:
    folder = out_dir / kind
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(_to_table(df), folder / "part-0.parquet", compression="snappy")
    return len(df)


def _sort_events(df: pd.DataFrame, *, numeric_ts: bool) -> pd.DataFrame:
    """Sort by (ts, user, item); source row order breaks remaining ties, so output is stable."""
    keys = pd.DataFrame(
        {
            "ts": pd.to_numeric(df[TS]) if numeric_ts else df[TS],
            "user": df[USER_ID].fillna(""),
            "item": df[ITEM_ID],
            "row": np.arange(len(df)),
        },
        index=df.index,
    )
    order = keys.sort_values(["ts", "user", "item", "row"], kind="stable").index
    return df.loc[order].reset_index(drop=True)


def _finish(out_dir: Path, events: pd.DataFrame, items: pd.DataFrame, *, numeric_ts: bool) -> dict:
    events = _sort_events(events, numeric_ts=numeric_ts)
    items = items.sort_values(ITEM_ID, kind="stable").reset_index(drop=True)
    return {
        "events": _write(events, out_dir, "events"),
        "items": _write(items, out_dir, "items"),
        "users": int(events[USER_ID].nunique(dropna=True)),
    }


# --------------------------------------------------------------------------- adapters

ONLINE_RETAIL_FILES = ("online_retail.csv.gz",)


def online_retail(src_dir: Path, out_dir: Path) -> dict:
    """UCI Online Retail, every row kept: the pipeline's cleaning is what the benchmark tests."""
    (path,) = _require(src_dir, ONLINE_RETAIL_FILES)
    raw = _read_str(path)
    # ~23k distinct minutes in 540k rows: parse (which validates) and format each once.
    stamps = pd.Series(raw["InvoiceDate"].unique())
    parsed = pd.to_datetime(stamps, format="%Y-%m-%d %H:%M:%S", utc=True)
    iso = dict(zip(stamps, parsed.dt.strftime("%Y-%m-%dT%H:%M:%SZ"), strict=True))
    customer = raw["CustomerID"].str.strip().str.replace(r"\.0+$", "", regex=True)
    events = pd.DataFrame(
        {
            USER_ID: customer.where(customer != "", None),
            ITEM_ID: raw["StockCode"],
            TS: raw["InvoiceDate"].map(iso),
            EVENT_TYPE: "purchase",
            QUANTITY: pd.to_numeric(raw["Quantity"]),
            VALUE: pd.to_numeric(raw["UnitPrice"]),
            "invoice_no": raw["InvoiceNo"],
            "country": raw["Country"],
        }
    )

    codes = pd.DataFrame({ITEM_ID: raw["StockCode"], "desc": raw["Description"]})
    codes = codes[codes["desc"].str.strip() != ""]
    counts = codes.groupby([ITEM_ID, "desc"]).size().rename("n").reset_index()
    counts = counts.sort_values([ITEM_ID, "n", "desc"], ascending=[True, False, True])
    titles = counts.drop_duplicates(ITEM_ID).set_index(ITEM_ID)["desc"]

    positive = events[events[VALUE] > 0]
    prices = positive.groupby(ITEM_ID)[VALUE].median()
    first_seen = events.groupby(ITEM_ID)[TS].min().str.slice(0, 10)

    items = pd.DataFrame({ITEM_ID: first_seen.index})
    items[TITLE] = items[ITEM_ID].map(titles).fillna("")
    items[DESCRIPTION] = ""
    items[CATEGORY] = ""
    items[PRICE] = items[ITEM_ID].map(prices).astype("float64")
    items[FIRST_SEEN] = items[ITEM_ID].map(first_seen)
    items[NON_PRODUCT] = np.where(
        items[ITEM_ID].map(lambda c: _PRODUCT_CODE.fullmatch(c) is None), "true", "false"
    )
    return _finish(out_dir, events, items, numeric_ts=False)


AMAZON_BEAUTY_FILES = ("interactions.csv.gz", "items.csv.gz")


def amazon_beauty(src_dir: Path, out_dir: Path) -> dict:
    """Amazon Beauty 5-core reviews; ids prefixed because user and item ids share 0..N."""
    inter_path, items_path = _require(src_dir, AMAZON_BEAUTY_FILES)
    inter = _read_str(inter_path)
    events = pd.DataFrame(
        {
            USER_ID: "u" + inter["user_id"],
            ITEM_ID: "i" + inter["item_id"],
            TS: inter["timestamp"],
            EVENT_TYPE: "review",
            # Day-resolution timestamps tie; seq_pos keeps the source's within-day order.
            "seq_pos": inter["seq_pos"],
        }
    )
    src_items = _read_str(items_path)
    items = pd.DataFrame({ITEM_ID: "i" + src_items["item_id"], TITLE: src_items["title"]})
    return _finish(out_dir, events, items, numeric_ts=True)


AMAZON_OFFICE_FILES = (
    "train.csv",
    "dev.csv",
    "test.csv",
    "Office.item2index",
    "Office.text",
    "item_meta.csv",
)


def amazon_office(src_dir: Path, out_dir: Path) -> dict:
    """Amazon Office 5-core: train + the leave-one-out dev/test rows (their negatives dropped)."""
    train, dev, test, item2index, text, meta = _require(src_dir, AMAZON_OFFICE_FILES)
    parts = []
    for split, path in (("train", train), ("dev", dev), ("test", test)):
        part = _read_str(path, sep="\t", usecols=["user_id", "item_id", "time"])
        part["split"] = split
        parts.append(part)
    inter = pd.concat(parts, ignore_index=True)
    # Times are epoch seconds (day resolution, 2000-09 .. 2014-07); passed through as is.
    events = pd.DataFrame(
        {
            USER_ID: inter["user_id"],
            ITEM_ID: inter["item_id"],
            TS: inter["time"],
            EVENT_TYPE: "review",
            "split": inter["split"],
        }
    )

    tsv = {"sep": "\t", "quoting": 3}  # csv.QUOTE_NONE: texts hold bare quotes
    index = _read_str(item2index, header=None, names=["asin", ITEM_ID], **tsv)
    texts = _read_str(text, **tsv).rename(columns={"id": "asin", "text": TITLE})
    cats = _read_str(meta, sep="\t", usecols=["item_id", "i_category", "i_brand"])
    items = index.merge(texts, on="asin", how="left").merge(cats, on=ITEM_ID, how="left")
    items[CATEGORY] = ("c" + items["i_category"]).where(items["i_category"].notna(), None)
    items[BRAND] = ("b" + items["i_brand"]).where(items["i_brand"].notna(), None)
    items = items[[ITEM_ID, TITLE, CATEGORY, BRAND, "asin"]]
    return _finish(out_dir, events, items, numeric_ts=True)


MOVIELENS_FILES = ("ratings.csv", "movies.csv", "tags.csv")


def movielens(src_dir: Path, out_dir: Path) -> dict:
    """MovieLens latest-small: explicit ratings; user tags become item description text."""
    ratings_path, movies_path, tags_path = _require(src_dir, MOVIELENS_FILES)
    ratings = _read_str(ratings_path)
    events = pd.DataFrame(
        {
            USER_ID: ratings["userId"],
            ITEM_ID: ratings["movieId"],
            TS: ratings["timestamp"],
            EVENT_TYPE: "rating",
            VALUE: pd.to_numeric(ratings["rating"]),
        }
    )
    tags = _read_str(tags_path)
    tags["tag"] = tags["tag"].str.strip()
    tags = tags[tags["tag"] != ""]
    described = tags.groupby("movieId")["tag"].agg(lambda t: ", ".join(sorted(set(t))))
    movies = _read_str(movies_path)
    items = pd.DataFrame(
        {
            ITEM_ID: movies["movieId"],
            TITLE: movies["title"],
            DESCRIPTION: movies["movieId"].map(described).fillna(""),
            CATEGORY: movies["genres"],
        }
    )
    return _finish(out_dir, events, items, numeric_ts=True)


DATASETS: dict[str, Adapter] = {
    "online-retail": online_retail,
    "amazon-beauty-2014": amazon_beauty,
    "amazon-office-2014": amazon_office,
    "ml-latest-small": movielens,
}
SOURCE_FILES: dict[str, tuple[str, ...]] = {
    "online-retail": ONLINE_RETAIL_FILES,
    "amazon-beauty-2014": AMAZON_BEAUTY_FILES,
    "amazon-office-2014": AMAZON_OFFICE_FILES,
    "ml-latest-small": MOVIELENS_FILES,
}


# --------------------------------------------------------------------------- driver


def _fingerprint(name: str, src_dir: Path) -> dict:
    """Cheap change detection (name, size, mtime) instead of hashing hundreds of MB each run."""
    files = {}
    for p in _require(src_dir, SOURCE_FILES[name]):
        st = p.stat()
        files[p.name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return {"dataset": name, "adapter_version": ADAPTER_VERSION, "files": files}


def _read_marker(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Readers see either the old folder or the new one, never a half-written one."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    os.replace(out_dir, old / out_dir.name)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def adapt(name: str, data_dir: str | Path, out_dir: str | Path, *, force: bool = False) -> dict:
    """Convert data_dir/name into a landing folder at out_dir.

    Idempotent: skipped when out_dir/_ADAPTED holds the same source fingerprint (file names,
    sizes, mtimes and the adapter version) unless ``force``. Writes into a temporary sibling and
    renames it into place, so a crash never leaves a half-written landing folder. Raises
    FileNotFoundError naming the missing file. Returns a summary with the rows written.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    src_dir = Path(data_dir) / name
    if not src_dir.is_dir():
        raise FileNotFoundError(f"dataset folder missing: {src_dir}")
    out_dir = Path(out_dir)
    fingerprint = _fingerprint(name, src_dir)
    marker = _read_marker(out_dir)
    if not force and marker is not None and marker.get("fingerprint") == fingerprint:
        return {**marker["summary"], "skipped": True}

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; Spark may read it as another user
    try:
        started = time.perf_counter()
        counts = DATASETS[name](src_dir, tmp)
        summary = {"dataset": name, **counts}
        marker_text = json.dumps({"fingerprint": fingerprint, "summary": summary}, indent=2)
        (tmp / MARKER).write_text(marker_text + "\n")
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**summary, "skipped": False, "seconds": round(time.perf_counter() - started, 3)}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: adapt one dataset (or ``all``, each into OUT/NAME) and print the summaries as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.adapters", description=__doc__)
    parser.add_argument("name", choices=[*DATASETS, "all"])
    parser.add_argument("--data-dir", default="../shared/datasets", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    names = list(DATASETS) if args.name == "all" else [args.name]
    try:
        for name in names:
            out = args.out / name if args.name == "all" else args.out
            print(json.dumps(adapt(name, args.data_dir, out, force=args.force)))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
