"""Asset events of the publishing tasks: one per successful publish, extras from the run record.

The operator runs the real spark-submit on a small application that writes a run record the way
a publishing stage does (or fails the way a failed gate does); the events land in Airflow's own
outlet event accessors, as in a task run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.execution_time.context import OutletEventAccessors

from longtail.assets import AssetEventError, asset_uri, emit_published, table_asset
from longtail.errors import PERMANENT_EXIT_CODE
from longtail.operators import StageSubmitOperator

DS = "2026-01-31"
RUN_ID = "manual__2026-01-31T01:30:00+00:00"

# Does what the publish stage does for the operator: writes its run record (or fails like a gate).
APP = """
import json, os, sys
cfg = json.loads(sys.argv[2])
if cfg.get("fail"):
    sys.exit(65)
folder = os.path.join(cfg["warehouse"], "_runs", "ds=" + cfg["ds"])
os.makedirs(folder, exist_ok=True)
summary = {"table": "recommendations", "ds": cfg["ds"], "rows": 60, "users": 6, "top_n": 10,
           "model_version": "fusion-x", "run_id": os.environ["LONGTAIL_RUN_ID"],
           "path": cfg["warehouse"] + "/recommendations/ds=" + cfg["ds"]}
with open(os.path.join(folder, "publish.json"), "w") as f:
    json.dump({"stage": "publish", "manifests": {"recommendations": summary}}, f)
"""


def _record(warehouse: Path, run_id: str = RUN_ID, ds: str = DS) -> dict[str, Any]:
    summary = {
        "table": "recommendations",
        "ds": ds,
        "rows": 60,
        "users": 6,
        "top_n": 10,
        "model_version": "fusion-x",
        "run_id": run_id,
        "published_at": "2026-02-01T01:40:00Z",
        "path": f"{warehouse}/recommendations/ds={ds}",
    }
    folder = warehouse / "_runs" / f"ds={DS}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "publish.json").write_text(json.dumps({"manifests": {"recommendations": summary}}))
    return summary


def test_asset_uris_are_the_table_folders() -> None:
    assert asset_uri("/data/wh", "recommendations") == "file:///data/wh/recommendations"
    assert asset_uri("hdfs://nn:8020/wh/", "similar_items") == "hdfs://nn:8020/wh/similar_items"
    asset = table_asset("/data/wh", "quality_metrics")
    assert (asset.name, asset.group) == ("longtail.quality_metrics", "longtail")


def test_event_carries_the_records_extras_and_the_night_as_partition_key(tmp_path: Path) -> None:
    summary = _record(tmp_path)
    events = OutletEventAccessors()
    asset = table_asset(str(tmp_path), "recommendations")
    extras = emit_published(
        events, [asset], "publish", {"warehouse": str(tmp_path), "ds": DS}, RUN_ID
    )
    expected = {k: summary[k] for k in ("ds", "rows", "users", "model_version", "path")}
    assert extras == [expected]
    assert events[asset].extra == expected
    assert events[asset].partition_keys == {DS}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"run_id": "scheduled__other"}, "not this run's"),
        ({"ds": "2026-01-30"}, "not 2026-01-31"),
    ],
)
def test_a_record_of_another_run_is_no_event(tmp_path: Path, change: dict, match: str) -> None:
    _record(tmp_path, **change)
    events = OutletEventAccessors()
    asset = table_asset(str(tmp_path), "recommendations")
    with pytest.raises(AssetEventError, match=match):
        emit_published(events, [asset], "publish", {"warehouse": str(tmp_path), "ds": DS}, RUN_ID)
    assert events[asset].extra == {} and not events[asset].partition_keys


def test_no_record_no_event(tmp_path: Path) -> None:
    asset = table_asset(str(tmp_path), "recommendations")
    with pytest.raises(AssetEventError, match="no run record"):
        emit_published(
            OutletEventAccessors(), [asset], "publish", {"warehouse": str(tmp_path), "ds": DS}
        )


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(
        "AIRFLOW_CONN_LONGTAIL_TEST_SPARK", '{"conn_type": "spark", "host": "local[1]"}'
    )
    bin_dir = str(Path(sys.executable).parent)  # spark-submit comes with pyspark
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ.get("PATH", ""))
    path = tmp_path / "fake_publish.py"
    path.write_text(APP)
    return path


def _publish_task(app: Path, warehouse: Path, fail: bool = False) -> StageSubmitOperator:
    config = {"ds": DS, "warehouse": str(warehouse), "fail": fail}
    return StageSubmitOperator(
        task_id="publish",
        conn_id="longtail_test_spark",
        application=str(app),
        application_args=["--config-json", json.dumps(config)],
        env_vars={"LONGTAIL_RUN_ID": RUN_ID},
        verbose=False,
        outlets=[table_asset(str(warehouse), "recommendations")],
    )


def test_operator_emits_after_the_stage_succeeded(app: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    op = _publish_task(app, warehouse)
    events = OutletEventAccessors()
    op.execute({"outlet_events": events})
    asset = op.outlets[0]
    assert events[asset].extra["rows"] == 60
    assert events[asset].extra["path"] == f"{warehouse}/recommendations/ds={DS}"
    assert events[asset].partition_keys == {DS}


def test_failed_gate_emits_nothing(app: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    _record(warehouse)  # an earlier run's record is there: still no event for a failed run
    op = _publish_task(app, warehouse, fail=True)
    events = OutletEventAccessors()
    with pytest.raises(AirflowFailException, match=f"exit code {PERMANENT_EXIT_CODE}"):
        op.execute({"outlet_events": events})
    asset = op.outlets[0]
    assert events[asset].extra == {} and not events[asset].partition_keys
