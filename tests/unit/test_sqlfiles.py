"""sql/ files: inputs bound per call as DataFrame parameters, $parameters substituted as text."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest

from longtail import sqlfiles


def _inputs(name: str) -> set[str]:
    text = (sqlfiles.sql_dir() / name).read_text(encoding="utf-8")
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


def test_each_sql_file_names_its_inputs_as_placeholders() -> None:
    """cleaning.py binds exactly these; a bare table name would read a session-wide view."""
    assert _inputs("clean_items.sql") == {"bronze_items"}
    assert _inputs("clean_events.sql") == {"bronze_events", "catalogue", "non_products"}
    assert _inputs("interactions.sql") == {"silver_events"}


def test_a_brace_in_a_parameter_is_text_not_an_input(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "probe.sql").write_text("SELECT '$label' AS label, x FROM {rows}\n")
    monkeypatch.setenv("LONGTAIL_SQL_DIR", str(tmp_path))
    rows = spark.createDataFrame([(1,), (2,)], "x int")
    out = sqlfiles.run_sql(spark, "probe.sql", {"rows": rows}, label="{rows} }{")
    assert sorted((r.label, r.x) for r in out.collect()) == [("{rows} }{", 1), ("{rows} }{", 2)]


def test_a_file_without_inputs_keeps_a_parameter_s_braces(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "probe.sql").write_text("SELECT '$label' AS label\n")
    monkeypatch.setenv("LONGTAIL_SQL_DIR", str(tmp_path))
    assert sqlfiles.run_sql(spark, "probe.sql", {}, label="{x}").first().label == "{x}"


def test_a_missing_input_is_an_error(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "probe.sql").write_text("SELECT * FROM {rows}\n")
    monkeypatch.setenv("LONGTAIL_SQL_DIR", str(tmp_path))
    with pytest.raises(KeyError, match=r"missing \['rows'\]"):
        sqlfiles.run_sql(spark, "probe.sql", {})
    with pytest.raises(KeyError, match=r"not used \['other'\]"):
        sqlfiles.run_sql(spark, "probe.sql", {"rows": spark.range(1), "other": spark.range(1)})
