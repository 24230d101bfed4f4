"""Example consumer of Longtail's output: one user segment's recommendations, exported each night.

Scheduled on the `longtail.recommendations` asset (a partitioned asset: one run per published
night, its partition key the night's ds). Wiring only; the export is longtail.consumer.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Param, PartitionedAssetTimetable, task

from longtail.assets import table_asset
from longtail.consumer import BUCKETS
from longtail.tables import RECOMMENDATIONS

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WAREHOUSE = os.environ.get("LONGTAIL_WAREHOUSE", str(REPO / "data" / "warehouse"))
RECS = table_asset(DEFAULT_WAREHOUSE, RECOMMENDATIONS)

DOC = """
### Longtail segment export (example consumer)

Runs once for every night `longtail_nightly` publishes `recommendations` (asset
`longtail.recommendations`, partition key = ds). Reads the partition named by the asset event,
checks it against its `_manifest.json` and writes the lists of one user segment (a hash bucket of
the user id) to `<outbox>/recommendations/segment=<n>/ds=<ds>.csv`. Triggered by hand, it exports
the newest published night (`recommendations/_latest.json`).
"""

with DAG(
    dag_id="longtail_segment_export",
    description="Example consumer: export one user segment's newest recommendations to CSV",
    doc_md=DOC,
    schedule=PartitionedAssetTimetable(assets=RECS),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["longtail", "example", "consumer"],
    params={
        "segment": Param(0, type="integer", minimum=0, maximum=BUCKETS - 1),
        "outbox": Param(
            os.environ.get("LONGTAIL_OUTBOX", ""),
            type="string",
            description="Folder for the CSV files; empty = `outbox/` beside the warehouse.",
        ),
        "warehouse": Param(DEFAULT_WAREHOUSE, type="string", minLength=1),
    },
) as dag:

    @task(retries=2)
    def export_segment(**context: object) -> dict:
        """The asset event's partition (or the newest, run by hand), one segment, to CSV."""
        from longtail.consumer import default_outbox, export_segment, latest_partition, newest_extra

        params: dict = context["params"]  # type: ignore[assignment]
        extra = newest_extra(context["triggering_asset_events"].get(RECS, []))  # type: ignore[attr-defined]
        partition = (extra or latest_partition(params["warehouse"]))["path"]
        outbox = params["outbox"] or default_outbox(partition)
        return export_segment(partition, int(params["segment"]), outbox)

    export_segment()
