"""Gates: a failed gate publishes nothing and leaves earlier partitions untouched.

Every audited table's validation result is kept with the run, pass or fail, in
`_runs/ds=<ds>/gates/<table>.json` (written by warehouse.publish.audit_staged).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from reliability_kit import (
    DS,
    EARLIER_DS,
    INGEST_CLEAN_TABLES,
    assert_no_partial_output,
    copy_warehouse,
    file_snapshot,
    leftovers,
    read_json,
    run_stage,
    table_hash,
    write,
    write_base_landing,
)

from longtail import gates
from longtail.config import CleanConfig, IngestConfig
from longtail.warehouse.publish import write_audit_publish
from longtail.warehouse.records import DATA_DOCS_HTML

SCHEMA = "item_id string, title string"
SILVER = ("quarantine", "catalogue", "silver_events", "interactions")


def _gate_record(warehouse: Path, ds: Any, table: str) -> dict:
    return read_json(warehouse / "_runs" / f"ds={ds}" / "gates" / f"{table}.json")


def _published(spark: Any, wh: Path) -> dict[str, dict[str, str]]:
    """A small table published for two dates; returns their file snapshots."""
    for ds, rows in ((EARLIER_DS, [("a", "A")]), (DS, [("b", "B"), ("c", "C")])):
        write_audit_publish(spark.createDataFrame(rows, SCHEMA), str(wh), "items", ds)
    return {d: file_snapshot(wh / "items" / f"ds={d}") for d in (EARLIER_DS, DS)}


def test_failing_audit_publishes_nothing(spark: Any, tmp_path: Path) -> None:
    wh = tmp_path / "wh"
    before = _published(spark, wh)

    def audit(df: Any) -> dict:
        raise ValueError(f"audit says no to {df.count()} rows")

    bad = spark.createDataFrame([("x", None)], SCHEMA)
    with pytest.raises(ValueError, match="audit says no to 1 rows"):
        write_audit_publish(bad, str(wh), "items", DS, audit)

    assert {d: file_snapshot(wh / "items" / f"ds={d}") for d in before} == before
    assert leftovers(wh) == []
    record = _gate_record(wh, DS, "items")
    assert record["success"] is False and "audit says no" in record["error"]


def test_failing_real_gate_publishes_nothing(spark: Any, tmp_path: Path) -> None:
    wh = tmp_path / "wh"
    before = _published(spark, wh)
    duplicated = spark.createDataFrame([("b", "B"), ("b", "B again"), ("z", None)], SCHEMA)
    with pytest.raises(gates.GateFailed, match="expect_column_values_to_be_unique"):
        write_audit_publish(duplicated, str(wh), "items", DS, gates.gate_catalogue)

    assert {d: file_snapshot(wh / "items" / f"ds={d}") for d in before} == before
    assert leftovers(wh) == []
    record = _gate_record(wh, DS, "items")
    assert record["success"] is False
    assert "gate 'catalogue' failed" in record["error"]

    # the same gate passes on good data, and its full result is kept with the run
    good = spark.createDataFrame([("b", "B"), ("d", "D")], SCHEMA)
    write_audit_publish(good, str(wh), "items", DS, gates.gate_catalogue)
    record = _gate_record(wh, DS, "items")
    assert record["success"] is True
    assert record["result"]["success"] is True
    assert record["result"]["statistics"]["evaluated_expectations"] == 4


def test_a_stage_with_a_failing_gate_publishes_none_of_its_tables(
    spark: Any, standard_landing: Path, reference: Path, tmp_path: Path
) -> None:
    """Clean of a night whose every event is unusable: silver_events fails its row-count gate.

    The catalogue and quarantine gates pass, yet no clean table is published for that night
    (the gates all run before the first publish), and the published earlier night is untouched.
    """
    wh = copy_warehouse(reference, tmp_path / "warehouse", drop=DS)
    earlier = {t: file_snapshot(wh / t / f"ds={EARLIER_DS}") for t in INGEST_CLEAN_TABLES}
    landing = write_base_landing(tmp_path / "landing")
    rows = "user_id,item_id,ts\n" + "".join(f"u{i},no-such-item,1715000000\n" for i in range(5))
    write(landing / "events" / "base.csv", rows)
    run_stage(spark, "ingest", IngestConfig(ds=DS, warehouse=str(wh), landing=str(landing)))

    with pytest.raises(gates.GateFailed, match="gate 'silver_events' failed"):
        run_stage(spark, "clean", CleanConfig(ds=DS, warehouse=str(wh)))

    for table in SILVER:
        assert not (wh / table / f"ds={DS}").exists(), table
    assert {t: file_snapshot(wh / t / f"ds={EARLIER_DS}") for t in earlier} == earlier
    assert_no_partial_output(wh)
    assert leftovers(wh) == []
    assert _gate_record(wh, DS, "catalogue")["success"] is True
    failed = _gate_record(wh, DS, "silver_events")
    assert failed["success"] is False
    assert "expect_table_row_count_to_be_between" in failed["error"]


def test_gate_results_are_kept_per_run(reference: Path) -> None:
    for ds in (EARLIER_DS, DS):
        for table in (
            "bronze_events",
            "bronze_items",
            "catalogue",
            "silver_events",
            "interactions",
        ):
            record = _gate_record(reference, ds, table)
            assert record["success"] is True, (ds, table)
            assert record["ds"] == ds.isoformat() and record["table"] == table
            stats = record["result"]["statistics"]
            assert stats["successful_expectations"] == stats["evaluated_expectations"] > 0


def test_recommendations_gate_result_is_kept(reference_published: Path) -> None:
    record = _gate_record(reference_published, DS, "recommendations")
    assert record["success"] is True
    names = {e["expectation_type"] for e in record["result"]["expectations"]}
    assert "expect_table_row_count_to_equal" in names
    assert table_hash(reference_published / "recommendations" / f"ds={DS}")


def test_clean_run_record_holds_the_accounting(reference: Path) -> None:
    for ds in (EARLIER_DS, DS):
        counts = read_json(reference / "_runs" / f"ds={ds}" / "clean.json")["counts"]
        for kind in ("events", "items"):
            parts = [counts[f"{kind}_{p}"] for p in ("accepted", "quarantined", "deferred")]
            assert sum(parts) == counts[f"{kind}_in"] > 0
        assert counts["events_quarantined"] > 0 and counts["events_deferred"] > 0


def test_data_docs_html_handed_over_by_an_audit_is_kept(spark: Any, tmp_path: Path) -> None:
    """The storage side of GX data docs: an audit's rendered HTML lands beside its JSON."""
    wh = tmp_path / "wh"
    df = spark.createDataFrame([("a", "A")], SCHEMA)
    write_audit_publish(
        df, str(wh), "items", DS, lambda d: {"success": True, DATA_DOCS_HTML: "<html>ok</html>"}
    )
    gates_dir = wh / "_runs" / f"ds={DS}" / "gates"
    assert (gates_dir / "items.html").read_text() == "<html>ok</html>"
    assert DATA_DOCS_HTML not in _gate_record(wh, DS, "items")["result"]

    class Rejected(Exception):
        pass

    def reject(d: Any) -> dict:
        exc = Rejected("no")
        exc.data_docs_html = "<html>failed</html>"  # type: ignore[attr-defined]
        exc.result = {"success": False, "statistics": {"unsuccessful_expectations": 1}}  # type: ignore[attr-defined]
        raise exc

    with pytest.raises(Rejected):
        write_audit_publish(df, str(wh), "items", EARLIER_DS, reject)
    gates_dir = wh / "_runs" / f"ds={EARLIER_DS}" / "gates"
    assert (gates_dir / "items.html").read_text() == "<html>failed</html>"
    assert _gate_record(wh, EARLIER_DS, "items")["result"]["success"] is False


def test_real_gates_keep_gx_data_docs_html(reference: Path) -> None:
    for table in ("catalogue", "silver_events", "interactions"):
        html = reference / "_runs" / f"ds={DS}" / "gates" / f"{table}.html"
        assert "<html" in html.read_text().lower()
