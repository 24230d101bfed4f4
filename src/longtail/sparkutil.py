"""One way to get a SparkSession, so spark-submit, tests and the benchmark run the same settings."""

from __future__ import annotations

import os

from pyspark import SparkConf
from pyspark.sql import SparkSession

from longtail import jvm_archive, runtime_env

# Settings that make results independent of the machine: UTC everywhere, Arrow for pandas UDFs.
BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "2048",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # Compiled query code is cached by its source: Spark keeps 100, and a night compiles about
    # 1,000 (sample), so in a long-lived session every night and stage compiled them again.
    "spark.sql.codegen.cache.maxEntries": "4000",
}

# Shuffles sized by their input and the cluster, not by a fixed count: every shuffle starts at
# SHUFFLE_TASKS_PER_CORE x the cluster's cores (spark.sql.shuffle.partitions) and, once the map
# side has run, adaptive execution merges neighbouring partitions up to the advisory size, so a
# small night gets a few tasks and a large one as many ~64 MiB tasks as it needs.
# parallelismFirst=false makes Spark honour the advisory size. The ceiling follows the cores
# rather than Spark's fixed 200: measured here (2 cores, a 400k-row recommendations gate run by
# GX inside Spark), 200 partitions took 130-166 s against 61 s for 8.
# Defaults only: a value in the launching conf (spark-submit --conf, e.g. from
# LONGTAIL_SPARK_CONF, or spark-defaults.conf) or in `extra` wins.
SHUFFLE_TASKS_PER_CORE = 4
SIZING_CONF = {
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.parallelismFirst": "false",
    "spark.sql.adaptive.advisoryPartitionSizeInBytes": "64m",
}
SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"


def get_spark(app_name: str = "longtail", extra: dict[str, str] | None = None) -> SparkSession:
    """Session from spark-submit when launched by it; otherwise a local one (tests, benchmark)."""
    runtime_env.apply()  # before the JVM and its Python workers start: they inherit it
    builder = SparkSession.builder.appName(app_name)
    # Under spark-submit the Python driver talks to spark-submit's JVM (PYSPARK_GATEWAY_PORT):
    # its --master and memory settings rule. A bare SparkConf() cannot tell, since it reads the
    # JVM's settings only once a context exists, so checking it made every stage local.
    launched_by_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if not launched_by_submit and not SparkConf().contains("spark.master"):
        builder = builder.master(os.environ.get("LONGTAIL_SPARK_MASTER", "local[2]"))
        builder = builder.config("spark.driver.memory", runtime_env.driver_memory())
    conf = {**BASE_CONF, **(extra or {})}
    if not launched_by_submit and not SparkConf().contains(jvm_archive.JAVA_OPTIONS):
        # the driver JVM starts in this process: map the class archive (a submitted one got it
        # from spark_launch.submit_settings; a JVM that is already up ignores the option)
        conf = jvm_archive.with_archive(conf)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    # Builder options override the launching conf, so the sizing defaults go in afterwards and
    # only where nothing set them (the context's conf holds --conf and the builder's options).
    launched = spark.sparkContext.getConf()
    cores = spark.sparkContext.defaultParallelism
    sizing = {**SIZING_CONF, SHUFFLE_PARTITIONS: str(SHUFFLE_TASKS_PER_CORE * cores)}
    for key, value in sizing.items():
        if key not in (extra or {}) and not launched.contains(key):
            spark.conf.set(key, value)
    spark.sparkContext.setLogLevel("WARN")
    return spark
