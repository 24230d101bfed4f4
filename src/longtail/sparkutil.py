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
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}

# Shuffles sized by their input, not by a fixed count: adaptive execution starts every shuffle
# at a ceiling of 200 partitions (enough for a cluster) and, once the map side has run, merges
# neighbouring partitions up to the advisory size, so a tiny night gets one or two tasks and a
# large one as many ~64 MiB tasks as it needs. parallelismFirst=false makes Spark honour the
# advisory size; the default (true) targets the cluster's parallelism and leaves many small tasks.
# Defaults only: a value in the launching conf (spark-submit --conf, e.g. from
# LONGTAIL_SPARK_CONF, or spark-defaults.conf) or in `extra` wins.
SIZING_CONF = {
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.parallelismFirst": "false",
    "spark.sql.adaptive.advisoryPartitionSizeInBytes": "64m",
    "spark.sql.shuffle.partitions": "200",
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
    # Builder options override the launching conf, so the sizing defaults go in afterwards and
    # only where nothing set them (the context's conf holds --conf and the builder's options).
    launched = spark.sparkContext.getConf()
    for key, value in SIZING_CONF.items():
        if key not in (extra or {}) and not launched.contains(key):
            spark.conf.set(key, value)
    spark.sparkContext.setLogLevel("WARN")
    return spark
