"""One way to get a SparkSession, so spark-submit, tests and the benchmark run the same settings."""

from __future__ import annotations

import os
import sys

from pyspark import SparkConf
from pyspark.sql import SparkSession

# Settings that make results independent of the machine: UTC everywhere, Arrow for pandas UDFs.
BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "2048",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}


def get_spark(app_name: str = "longtail", extra: dict[str, str] | None = None) -> SparkSession:
    """Session from spark-submit when launched by it; otherwise a local one (tests, benchmark)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.appName(app_name)
    # Under spark-submit the Python driver talks to spark-submit's JVM (PYSPARK_GATEWAY_PORT):
    # its --master and memory settings rule. A bare SparkConf() cannot tell, since it reads the
    # JVM's settings only once a context exists, so checking it made every stage local.
    launched_by_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if not launched_by_submit and not SparkConf().contains("spark.master"):
        builder = builder.master(os.environ.get("LONGTAIL_SPARK_MASTER", "local[2]"))
        builder = builder.config(
            "spark.driver.memory", os.environ.get("LONGTAIL_DRIVER_MEMORY", "4g")
        )
    for key, value in {**BASE_CONF, **(extra or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
