"""Model files: a model's text and its metadata, published for a night as one partition.

`<table>/ds=<ds>/model.txt` and `meta.json` are staged, then swapped into place like any table
(publish.publish_staged_set), so no reader sees a model without its metadata or half of a
re-run's. Written and read through Fs: any warehouse URI works (a local disk, HDFS, S3).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any, NamedTuple

from pyspark.sql import SparkSession

from longtail.warehouse.fs import Fs
from longtail.warehouse.layout import SUCCESS, staging_path, table_path
from longtail.warehouse.publish import publish_staged_set
from longtail.warehouse.staging import claim_staging, staging_attempt

MODEL_FILE = "model.txt"
META_FILE = "meta.json"


class Model(NamedTuple):
    meta: dict[str, Any]
    text: str


def meta_path(warehouse: str, table: str, ds: date) -> str:
    return f"{table_path(warehouse, table, ds)}/{META_FILE}"


def publish_model(
    spark: SparkSession, warehouse: str, table: str, ds: date, text: str, meta: dict[str, Any]
) -> str:
    """Publish a night's model text and metadata (replacing an earlier one); returns its folder."""
    with staging_attempt(spark, warehouse, [table], ds) as attempt:
        staged = staging_path(warehouse, table, ds, attempt)
        fs = Fs(spark, staged)
        claim_staging(fs, warehouse, table, ds, attempt)
        fs.write_text(f"{staged}/{MODEL_FILE}", text)
        fs.write_text(f"{staged}/{META_FILE}", json.dumps(meta, indent=2, sort_keys=True))
        fs.write_text(f"{staged}/{SUCCESS}", "")
        publish_staged_set(spark, warehouse, [table], ds, attempt)
    return table_path(warehouse, table, ds)


def read_model(spark: SparkSession, warehouse: str, table: str, ds: date) -> Model | None:
    """A night's published model; None when there is none."""
    meta_uri = meta_path(warehouse, table, ds)
    fs = Fs(spark, meta_uri)
    if not fs.exists(meta_uri):
        return None
    meta = json.loads(fs.read_text(meta_uri))
    return Model(meta, fs.read_text(f"{table_path(warehouse, table, ds)}/{MODEL_FILE}"))
