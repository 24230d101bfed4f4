"""Longtail nightly: landing -> bronze -> silver -> content + ALS -> ranker -> published top-N.

This file only wires stages together: every stage of longtail.registry is a Spark job
(`jobs/run_stage.py <stage>`) launched with spark-submit through the `longtail_spark` connection
(local[2] by default; point the connection at a cluster master to run there, no code change: the
operator decides the driver's bind address and the executors' environment from the connection
when the task runs). The tasks, their dependencies (derived from the tables each stage reads and
writes) and their outlets come from the registry. Nothing heavy is imported at parse time.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param, task, teardown
from airflow.timetables.interval import CronDataIntervalTimetable

from longtail import registry, runtime_env
from longtail.assets import table_asset
from longtail.manifest import RUN_ID_ENV
from longtail.operators import StageSubmitOperator

REPO = Path(__file__).resolve().parents[1]
SPARK_CONN_ID = os.environ.get("LONGTAIL_SPARK_CONN_ID", "longtail_spark")
DEFAULT_LANDING = os.environ.get("LONGTAIL_LANDING", str(REPO / "data" / "landing" / "sample"))
DEFAULT_WAREHOUSE = os.environ.get("LONGTAIL_WAREHOUSE", str(REPO / "data" / "warehouse"))

DOC = """
### Longtail nightly recommendations

For the run date **ds** (the data interval's start for scheduled runs, or the `ds` param for
manual runs and backfills) reads every landing event before ds + 1 day, cleans it (bad rows go
to `quarantine/` with a reason), embeds item text with a pretrained encoder (`content`), reduces
the interactions to item statistics and co-occurrence neighbours once (`item_space`), trains
ALS and a LightGBM fusion ranker on a temporal window, scores every user with history (multi-
source candidates, ranker, tail-aware re-ranking) and publishes
`<warehouse>/recommendations/ds=<ds>/` atomically after a Great Expectations gate; also
`<warehouse>/similar_items/ds=<ds>/` for product pages, and `<warehouse>/item_audiences/ds=<ds>/`:
for every new product, the shoppers most likely to want it.

Params: `ds` (YYYY-MM-DD, optional), `top_n`, `landing`, `warehouse`, and `overrides`: per-stage
config overrides such as `{"train_als": {"factors": 128}}`. Each stage records its validated
config and counts under `<warehouse>/_runs/ds=<ds>/`.

`quality` scores the previous night's published list against the events that arrived since and
writes one row to `<warehouse>/quality_metrics/ds=<ds>/`.

Each published partition holds `_manifest.json`, each published table `_latest.json`; `publish`,
`similar_items`, `item_audiences` and `quality` update the assets `longtail.<table>`
(partition key = ds). `retention` deletes
the nights that fell out of their window; `data_docs` (runs whatever happened before it) rebuilds
the quality site at `<warehouse>/_data_docs/index.html`.
"""

default_args = {
    "owner": "longtail",
    "retries": 2,
    "retry_delay": timedelta(seconds=int(os.environ.get("LONGTAIL_RETRY_DELAY_S", "120"))),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=3),
}

with DAG(
    dag_id="longtail_nightly",
    description="Nightly per-user top-N recommendations published to Parquet",
    doc_md=DOC,
    schedule=CronDataIntervalTimetable("30 1 * * *", timezone="UTC"),
    # A shop's own history is what users backfill: any run date from 1970 on is valid. With
    # catchup off the scheduler still creates only the latest interval.
    start_date=datetime(1970, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["longtail", "recommendations", "spark"],
    params={
        "ds": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Run date YYYY-MM-DD; empty = the run's data interval start.",
        ),
        "top_n": Param(20, type="integer", minimum=1, maximum=1000),
        "landing": Param(DEFAULT_LANDING, type="string", minLength=1),
        "warehouse": Param(DEFAULT_WAREHOUSE, type="string", minLength=1),
        # Typed per stage from the registry's config classes: the trigger form and the REST API
        # refuse a wrong type or an unknown stage or field before any task starts.
        "overrides": Param(
            {},
            description='Per-stage config overrides, e.g. {"train_als": {"factors": 128}}.',
            **registry.overrides_schema(),
        ),
    },
) as dag:

    @task(retries=0)
    def resolve_run(**context: object) -> dict:
        """Validate every stage's config before any Spark job starts; hand each its arguments."""
        from longtail.dagargs import resolve

        return resolve(context["params"], context.get("data_interval_start"))  # type: ignore[arg-type, index]

    @teardown
    def data_docs(**context: object) -> str:
        """Rebuild the quality site from every night's gate results and metrics.

        A teardown: it runs after a failed night too (its failed gate is worth a look) and does
        not decide the run's state.
        """
        from longtail.config import normalise_location
        from longtail.datadocs import build_site

        return build_site(normalise_location(context["params"]["warehouse"]))  # type: ignore[index]

    resolved = resolve_run()
    jobs = {}
    for stage in registry.STAGES:
        jobs[stage.name] = StageSubmitOperator(
            task_id=stage.name,
            conn_id=SPARK_CONN_ID,
            application=str(REPO / registry.JOB),
            application_args=[
                stage.name,
                "--config-json",
                "{{ ti.xcom_pull(task_ids='resolve_run')['configs']['"
                + stage.name
                + "'] | tojson }}",
            ],
            name=f"longtail-{stage.name}",
            env_vars={
                "PYSPARK_PYTHON": os.environ.get("LONGTAIL_PYSPARK_PYTHON", sys.executable),
                "PYSPARK_DRIVER_PYTHON": sys.executable,
                **runtime_env.WORKER_ENV,
                RUN_ID_ENV: "{{ run_id }}",  # recorded in the manifests, checked by the operator
            },
            driver_memory=runtime_env.driver_memory(),
            executor_memory=runtime_env.executor_memory(),
            verbose=False,
            outlets=[table_asset(DEFAULT_WAREHOUSE, stage.publishes)] if stage.publishes else [],
        )
        # after the stages that write what it reads; a stage that reads nothing after resolve_run
        for up in [jobs[n] for n in registry.upstream(stage.name)] or [resolved]:
            up >> jobs[stage.name]
    docs = data_docs()
    for leaf in registry.leaves():
        jobs[leaf] >> docs
