"""The landing's CSV header, read without a Spark job (`landing.safe_csv_header` over
`Fs.first_line`), against what Spark's own CSV reader names the columns of the same file."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from longtail.landing import _raw_columns, safe_csv_header
from longtail.warehouse.fs import Fs

HEADERS = [
    "user_id,item_id,ts,event_type,quantity,value",
    "User_ID,ITEM_ID,ts",
    "a,A,b,a",  # duplicates ignoring case: the index is suffixed to each
    "a,,b,",  # empty names and a trailing comma: _c<index>
    " user_id , item_id ",  # whitespace is kept (the contract matches names stripped)
    "user_id;item_id",  # one column: only commas separate
    "prix €,catégorie",
]


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("gz", [False, True])
def test_the_header_is_named_as_spark_names_it(
    spark: Any, tmp_path: Path, header: str, gz: bool
) -> None:
    body = f"{header}\r\n1,2,3\n".encode()
    path = tmp_path / ("f.csv.gz" if gz else "f.csv")
    path.write_bytes(gzip.compress(body) if gz else body)
    uri = path.as_uri()
    line = Fs(spark, uri).first_line(uri)
    assert line == header
    fast = safe_csv_header(line)
    assert fast == spark.read.option("header", True).csv(str(path)).columns
    assert _raw_columns(spark, uri, "csv") == fast


@pytest.mark.parametrize(
    "header", ['"user_id","item,id"', "\ufeffuser_id,item_id", 'a,"b ""q""",c']
)
def test_lines_that_need_the_csv_parser_go_to_spark(
    spark: Any, tmp_path: Path, header: str
) -> None:
    path = tmp_path / "f.csv"
    path.write_text(f"{header}\n1,2\n", encoding="utf-8")
    assert safe_csv_header(header) is None
    assert _raw_columns(spark, path.as_uri(), "csv") == (
        spark.read.option("header", True).csv(str(path)).columns
    )


def test_an_empty_file_has_no_first_line(spark: Any, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert Fs(spark, path.as_uri()).first_line(path.as_uri()) is None
