"""Run nights of the whole pipeline in a process of their own: `python run_nights.py LANDING
WAREHOUSE NIGHT... [--shuffle-partitions N]`, the Spark master from LONGTAIL_SPARK_MASTER.

One SparkContext per process, so the schedule tests that need another core count start this.
A script file, not `python -c`: pyspark's Connect import check takes a `-c` main for doctests.
"""

from __future__ import annotations

import argparse
from datetime import date

from reliability_kit import full_pipeline

from longtail.sparkutil import get_spark


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("landing")
    parser.add_argument("warehouse")
    parser.add_argument("nights", nargs="+", type=date.fromisoformat)
    parser.add_argument("--shuffle-partitions", default="2")
    args = parser.parse_args()
    extra = {"spark.sql.shuffle.partitions": args.shuffle_partitions}
    spark = get_spark("longtail-schedule-test", extra=extra)
    try:
        print("cores", spark.sparkContext.defaultParallelism, flush=True)
        for ds in args.nights:
            print(ds, full_pipeline(spark, args.landing, args.warehouse, ds), flush=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
