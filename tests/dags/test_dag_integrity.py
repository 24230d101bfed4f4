"""The nightly DAG parses cleanly, has the intended shape, and stays cheap to parse.

Fast (no Spark, no database): the DAG is loaded the way the dag-processor loads it, by DagBag
(fixtures in conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "longtail_nightly.py"
DAG_ID = "longtail_nightly"
CONSUMER_FILE = REPO / "dags" / "longtail_segment_export.py"
CONSUMER_ID = "longtail_segment_export"
# task -> its upstream tasks: the whole graph, exactly (the registry derives it from the tables
# each stage reads and writes; this is what that derivation must give).
UPSTREAM = {
    "resolve_run": set(),
    "ingest": {"resolve_run"},
    "clean": {"ingest"},
    "content": {"clean"},
    "train_als": {"clean"},
    "item_space": {"clean"},
    "train_ranker": {"content", "train_als", "item_space"},
    "score": {"train_ranker"},
    "publish": {"score"},
    "similar_items": {"content", "train_als", "item_space"},
    "item_audiences": {"content", "train_als", "item_space"},
    "quality": {"publish"},
    "retention": {"quality", "similar_items", "item_audiences"},
    "data_docs": {"retention"},
}
# The spine every night must walk, in this order.
CHAIN = ("resolve_run", "ingest", "clean", "train_als", "train_ranker", "score", "publish")
SPARK_STAGES = tuple(t for t in UPSTREAM if t not in ("resolve_run", "data_docs"))
# stage -> the published table whose asset it updates
OUTLETS = {
    "publish": "recommendations",
    "similar_items": "similar_items",
    "item_audiences": "item_audiences",
    "quality": "quality_metrics",
}
# Heavy libraries that belong in the Spark jobs, never in the scheduler's parse loop.
HEAVY_MODULES = (
    "pyarrow",
    "pyspark",
    "implicit",
    "lightgbm",
    "great_expectations",
    "torch",
    "sentence_transformers",
    "pandas",
)


def test_dagbag_has_no_import_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert DAG_ID in dagbag.dags


def test_task_ids_and_exact_dependencies(dag: Any) -> None:
    assert sorted(dag.task_ids) == sorted(UPSTREAM)
    for task_id, upstream in UPSTREAM.items():
        task = dag.get_task(task_id)
        downstream = {t for t, ups in UPSTREAM.items() if task_id in ups}
        assert task.upstream_task_ids == upstream, task_id
        assert task.downstream_task_ids == downstream, task_id


def test_the_spine_runs_in_order_after_validation(dag: Any) -> None:
    for before, after in pairwise(CHAIN):
        assert after in dag.get_task(before).downstream_task_ids, (before, after)
    # No Spark job can start before resolve_run has validated every stage's config.
    assert [t.task_id for t in dag.roots] == ["resolve_run"]
    assert dag.get_task("resolve_run").get_flat_relative_ids(upstream=False) == {
        *SPARK_STAGES,
        "data_docs",
    }
    order = [t.task_id for t in dag.topological_sort()]
    assert [t for t in order if t in CHAIN] == list(CHAIN)


def test_every_spark_stage_has_a_validated_config(dag: Any) -> None:
    from longtail.dagargs import STAGE_CONFIGS
    from longtail.registry import NAMES, PUBLISHED_BY

    assert set(STAGE_CONFIGS) == set(SPARK_STAGES) == set(NAMES)
    assert PUBLISHED_BY == OUTLETS


def test_retries(dag: Any) -> None:
    # Validation is deterministic: retrying a bad config only delays the failure.
    assert dag.get_task("resolve_run").retries == 0
    for task_id in SPARK_STAGES:
        task = dag.get_task(task_id)
        assert task.retries >= 2, task_id
        assert task.retry_delay > timedelta(0), task_id
        assert task.execution_timeout is not None, task_id


def test_documentation_and_tags(dag: Any) -> None:
    assert dag.doc_md and dag.doc_md.strip()
    assert dag.description
    assert dag.tags and "longtail" in dag.tags


def test_schedule_is_daily_cron_data_interval_without_catchup(dag: Any) -> None:
    from airflow.timetables.interval import CronDataIntervalTimetable

    tt = dag.timetable
    assert isinstance(tt, CronDataIntervalTimetable)
    minute, hour, *rest = tt.serialize()["expression"].split()
    assert minute.isdigit() and hour.isdigit() and rest == ["*", "*", "*"]
    assert tt.serialize()["timezone"] == "UTC"
    interval = tt.infer_manual_data_interval(run_after=datetime(2026, 2, 10, 12, tzinfo=UTC))
    assert interval.end - interval.start == timedelta(days=1)
    assert dag.catchup is False
    assert dag.max_active_runs == 1


def test_runs_for_a_shops_old_history_are_in_range(dag: Any) -> None:
    """A start date after the run date makes Airflow mark the run successful with no task run."""
    # MovieLens and the Amazon review sets start in the 1990s; retail logs in 2010.
    assert dag.start_date <= datetime(1990, 1, 1, tzinfo=UTC)
    assert dag.end_date is None
    for task in dag.tasks:
        assert task.start_date is None or task.start_date <= dag.start_date, task.task_id


def test_params_and_their_schemas(dag: Any) -> None:
    assert set(dag.params) == {"ds", "top_n", "landing", "warehouse", "overrides"}
    top_n = dag.params.get_param("top_n")
    assert top_n.schema["type"] == "integer"
    assert top_n.schema["minimum"] == 1
    assert top_n.schema["maximum"] == 1000
    ds = dag.params.get_param("ds")
    assert ds.value is None
    assert set(ds.schema["type"]) == {"null", "string"}
    assert ds.schema["format"] == "date"
    assert dag.params.get_param("overrides").schema["type"] == "object"
    dag.params.validate()  # the defaults themselves are valid


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("top_n", 0),
        ("top_n", 1001),
        ("top_n", "10"),
        ("ds", "2026-13-45"),
        ("ds", "yesterday"),
        ("overrides", ["train_als"]),
    ],
)
def test_bad_param_values_are_rejected(dag: Any, name: str, value: Any) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        dag.params.get_param(name).resolve(value)


@pytest.mark.parametrize(
    ("name", "value"), [("top_n", 1), ("top_n", 1000), ("ds", None), ("ds", "2026-01-31")]
)
def test_good_param_values_are_accepted(dag: Any, name: str, value: Any) -> None:
    assert dag.params.get_param(name).resolve(value) == value


def test_spark_tasks_use_the_longtail_connection_and_existing_jobs(dag: Any) -> None:
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    spark_tasks = [t for t in dag.tasks if isinstance(t, SparkSubmitOperator)]
    assert sorted(t.task_id for t in spark_tasks) == sorted(SPARK_STAGES)
    job = (REPO / "jobs" / "run_stage.py").resolve()
    for task in spark_tasks:
        assert task._conn_id == "longtail_spark", task.task_id
        assert Path(task.application).resolve() == job, task.application
        # jobs/run_stage.py <stage>: the stage's validated config comes from resolve_run.
        assert task.application_args[0] == task.task_id
        args = " ".join(task.application_args[1:])
        assert "resolve_run" in args and f"'{task.task_id}'" in args
        assert task.env_vars.get("PYSPARK_PYTHON"), task.task_id


def test_publishing_tasks_declare_their_table_assets(dag: Any) -> None:
    """One asset per published table, an outlet of the one task that publishes it, nowhere else."""
    for task in dag.tasks:
        outlets = [(a.name, a.uri) for a in task.outlets]
        if task.task_id not in OUTLETS:
            assert outlets == [], task.task_id
            continue
        table = OUTLETS[task.task_id]
        assert [name for name, _ in outlets] == [f"longtail.{table}"], task.task_id
        uri = outlets[0][1]
        # on the warehouse the DAG defaults to (LONGTAIL_WAREHOUSE, else data/warehouse)
        assert uri == f"file://{REPO / 'data' / 'warehouse' / table}", uri
        # the spark job learns its Airflow run id, which its manifest records
        assert task.env_vars.get("LONGTAIL_RUN_ID") == "{{ run_id }}", task.task_id


def test_data_docs_runs_after_everything_and_does_not_decide_the_run(dag: Any) -> None:
    """A teardown: it runs when a night failed too, and a failed night stays failed."""
    docs = dag.get_task("data_docs")
    assert docs.is_teardown
    assert str(docs.trigger_rule) in (
        "all_done_setup_success",
        "TriggerRule.ALL_DONE_SETUP_SUCCESS",
    )
    assert [t.task_id for t in dag.leaves] == ["data_docs"]
    assert docs.get_flat_relative_ids(upstream=True) == set(UPSTREAM) - {"data_docs"}


def test_consumer_dag_is_scheduled_on_the_recommendations_partitions(dagbag: Any) -> None:
    from airflow.sdk import PartitionedAssetTimetable

    consumer = dagbag.dags[CONSUMER_ID]
    assert isinstance(consumer.timetable, PartitionedAssetTimetable)
    condition = consumer.timetable.asset_condition
    assert (condition.name, condition.uri) == (
        "longtail.recommendations",
        f"file://{REPO / 'data' / 'warehouse' / 'recommendations'}",
    )
    assert [t.task_id for t in consumer.tasks] == ["export_segment"]
    assert set(consumer.params) == {"segment", "outbox", "warehouse"}
    consumer.params.validate()


def _run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LONGTAIL_")}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
    )
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(("path", "dag_id"), [(DAG_FILE, DAG_ID), (CONSUMER_FILE, CONSUMER_ID)])
def test_parsing_imports_nothing_heavy(tmp_path: Path, path: Path, dag_id: str) -> None:
    """A fresh interpreter parses the DAG file; no heavy library may be imported by it."""
    code = f"""
        import importlib.util, json, sys
        spec = importlib.util.spec_from_file_location("longtail_dag_probe", {str(path)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.dag.dag_id == {dag_id!r}
        heavy = {list(HEAVY_MODULES)!r}
        print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
    """
    proc = _run_python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_config_validation_imports_nothing_heavy(tmp_path: Path) -> None:
    """resolve_run's code (longtail.dagargs) rejects a bad config with the stdlib alone."""
    code = """
        import json, sys
        from longtail.config import ConfigError
        from longtail.dagargs import resolve
        params = {"ds": "2026-01-31", "top_n": 5, "landing": "/l", "warehouse": "/w",
                  "overrides": {"train_als": {"factors": 0}}}
        try:
            resolve(params, None)
        except ConfigError as exc:
            print("rejected:", exc)
        else:
            raise SystemExit("factors=0 was accepted")
        heavy = ["pyspark", "py4j", "implicit", "numpy", "pandas", "great_expectations"]
        print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
    """
    proc = _run_python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rejected:" in proc.stdout
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"train_als": {"factors": "x"}},
        {"train_als": {"factors": 64.5}},
        {"train_als": {"factors": True}},
        {"train_als": {"no_such_field": 1}},
        {"train_ALS": {"factors": 8}},
        {"clean": {"event_weights": {"view": "heavy"}}},
        {"ingest": {"landing": "/elsewhere"}},
        {"publish": {"warehouse": "/elsewhere"}},
        {"score": {"ds": "2026-01-31"}},
        {"train_als": 64},
    ],
)
def test_the_trigger_form_refuses_bad_overrides(dag: Any, overrides: dict) -> None:
    """The overrides Param's schema comes from the stage configs: a wrong type, an unknown stage
    or field is refused when the run is triggered, before any task starts."""
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        dag.params.get_param("overrides").resolve(overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"train_als": {"factors": 128, "alpha": 10, "regularization_grid": [1, 2.5]}},
        {"clean": {"event_weights": {"view": 0.5}}, "score": {"strategy": "als", "top_n": 5}},
        {"retention": {"keep_published_nights": None}},
        {"ingest": {}},
    ],
)
def test_the_trigger_form_accepts_good_overrides(dag: Any, overrides: dict) -> None:
    assert dag.params.get_param("overrides").resolve(overrides) == overrides


def test_the_overrides_schema_covers_every_stage_and_field(dag: Any) -> None:
    import jsonschema

    from longtail import registry

    schema = dag.params.get_param("overrides").schema
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(registry.NAMES)
    for stage in registry.STAGES:
        sub = schema["properties"][stage.name]
        assert sub["additionalProperties"] is False, stage.name
        fields = set(stage.config_class.field_names()) - set(registry.RUN_FIELDS)
        assert set(sub["properties"]) == fields, stage.name
        # every default is a valid override of its own stage
        cfg = stage.config_class(ds="2026-01-31", warehouse="/w")
        defaults = json.loads(json.dumps({k: v for k, v in cfg.to_dict().items() if k in fields}))
        jsonschema.validate({stage.name: defaults}, schema)


@pytest.mark.parametrize("factors", ["x", 64.5])
def test_the_serialized_dag_refuses_a_bad_override_as_the_rest_api_does(
    dag: Any, factors: Any
) -> None:
    """The API server validates a triggered run's conf against the serialized DAG's params
    (`ParamValidationError` -> HTTP 400 in the dagRuns route); the schema survives serialization."""
    from airflow.exceptions import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization

    served = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    with pytest.raises(ParamValidationError, match="overrides"):
        served.params.deep_merge({"overrides": {"train_als": {"factors": factors}}}).validate()
    good = served.params.deep_merge({"overrides": {"train_als": {"factors": 8}}}).validate()
    assert good["overrides"] == {"train_als": {"factors": 8}}
