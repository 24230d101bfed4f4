"""A class-data-sharing archive for the Spark driver JVM: fewer seconds per JVM start.

A night on a small shop is mostly fixed cost, and much of that is the driver JVM loading and
verifying the same ~15,000 Spark classes every time it starts (the session server, each
spark-submit task, each test process). JDK 13+ can dump the classes a run loaded into an archive
(`-XX:ArchiveClassesAtExit`) and map it into later JVMs (`-XX:SharedArchiveFile`). Measured here
(2 cores, JDK 17, a local session reading, aggregating, joining and writing 88k events): start
4.8 -> 2.8 s and the first job 5.9 -> 3.8 s.

`make venv` builds the archive once (`python -m longtail.jvm_archive`) into the virtualenv, next
to the jars it was built from; `java_options()` names it to every driver started through
`sparkutil.get_spark` or `spark_launch.submit_settings`. Nothing depends on it: the file name
follows the Spark version, the java binary and the jars, so another install never picks it up,
and a JVM that still finds it unusable runs without it (`-Xshare:auto`). The results of a run do
not change (the same classes, loaded from a different place). LONGTAIL_SPARK_CDS=off turns it off;
LONGTAIL_SPARK_CDS=<file> names another archive.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# auto (default): this install's archive when it exists; off: none; else the path of an archive
ENV = "LONGTAIL_SPARK_CDS"
JAVA_OPTIONS = "spark.driver.extraJavaOptions"


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return os.path.realpath(java) if java and os.path.exists(java) else None


def archive_path(prefix: str = sys.prefix) -> Path | None:
    """Where this install's archive lives: one per (Spark, java binary, jars)."""
    java = _java()
    try:
        import pyspark
    except ImportError:
        return None
    if java is None:
        return None
    jars = Path(pyspark.__file__).parent / "jars"
    names = sorted(p.name for p in jars.glob("*.jar")) if jars.is_dir() else []
    key = hashlib.sha256("\n".join([pyspark.__version__, java, *names]).encode()).hexdigest()
    return Path(prefix) / "share" / "longtail" / f"spark-driver-{key[:12]}.jsa"


def java_options(environ: Mapping[str, str] = os.environ, path: Path | None = None) -> str | None:
    """The driver JVM options that map the archive, or None (off, or no archive built)."""
    setting = environ.get(ENV, "auto")
    if setting == "off":
        return None
    if path is None:
        path = archive_path() if setting == "auto" else Path(setting)
    if path is None or not path.is_file():
        return None
    return f"-XX:SharedArchiveFile={path} -Xshare:auto"


def with_archive(
    conf: Mapping[str, str], environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """`conf` plus the archive's driver options, unless the conf sets the driver's JVM options
    itself (a deployment's own flags are kept as they are)."""
    out = dict(conf)
    options = java_options(environ)
    if options and JAVA_OPTIONS not in out:
        out[JAVA_OPTIONS] = options
    return out


def _workload(spark: Any, folder: Path) -> None:
    """What the stages do, on a few rows, so that the archive holds the classes they load: CSV
    and JSON landing reads with a corrupt-record column, partitioned Parquet, aggregates, window
    functions, broadcast and sort-merge joins, caching, arrays, Arrow to and from pandas, pandas
    UDFs, a pair RDD, and the warehouse's Hadoop FileSystem calls."""
    import pandas as pd
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from longtail.warehouse.fs import Fs

    root = str(folder)
    (folder / "landing").mkdir()
    (folder / "landing" / "e.csv").write_text("user_id,item_id,n\nu1,i1,1\nu2,i2,x\n")
    (folder / "landing" / "e.json").write_text('{"user_id": "u1", "n": 1}\n{broken\n')
    csv = (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", "_corrupt_record")
        .schema("user_id string, item_id string, n int, _corrupt_record string")
        .csv(f"{root}/landing/e.csv")
    )
    csv.cache().count()
    spark.read.option("mode", "PERMISSIVE").json(f"{root}/landing/e.json").collect()
    events = spark.createDataFrame(
        pd.DataFrame(
            {
                "user_id": [f"u{i % 7}" for i in range(200)],
                "item_id": [f"i{i % 13}" for i in range(200)],
                "ts": pd.date_range("2026-01-01", periods=200, freq="h"),
                "weight": [float(i % 4) for i in range(200)],
            }
        )
    )
    events.withColumn("ds", F.to_date("ts")).write.partitionBy("ds").parquet(f"{root}/e")
    events = spark.read.parquet(f"{root}/e").unionByName(csv.select("user_id", "item_id"), True)
    per_user = events.groupBy("user_id").agg(
        F.count("*").alias("n"),
        F.max("ts").alias("last"),
        F.countDistinct("item_id").alias("items"),
        F.collect_list("item_id").alias("history"),
        F.percentile_approx("weight", 0.5).alias("median"),
    )
    exploded = per_user.select("user_id", F.explode("history").alias("item_id"))
    pairs = events.select("user_id", "item_id").distinct().join(exploded, ["user_id", "item_id"])
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")  # a sort-merge join
    ranked = pairs.join(per_user, "user_id").withColumn(
        "rank", F.row_number().over(Window.partitionBy("user_id").orderBy(F.desc("item_id")))
    )
    spark.conf.unset("spark.sql.autoBroadcastJoinThreshold")
    kept = ranked.join(F.broadcast(per_user.select("user_id")), "user_id", "left_semi")
    kept.where(F.col("rank") <= 5).orderBy("user_id", "rank").write.mode("overwrite").parquet(
        f"{root}/r"
    )
    back = spark.read.parquet(f"{root}/r")
    back.toPandas()
    back.mapInPandas(lambda it: it, back.schema).collect()
    spark.sparkContext.parallelize([(i % 2, i) for i in range(10)], 2).partitionBy(
        2, lambda k: k
    ).collect()
    fs = Fs(spark, root)
    fs.write_text(f"{root}/t/a.json", "{}\n")
    fs.rename(f"{root}/t", f"{root}/u")
    fs.list_files(f"{root}/u")
    fs.read_text(f"{root}/u/a.json")
    fs.delete(f"{root}/u")
    csv.unpersist()


def build(path: Path) -> float:
    """Run the workload in a local driver that dumps its loaded classes to `path` at exit.

    The file is written beside its final name and moved into place only once the JVM has exited
    (a half-written archive is never picked up). Returns the seconds it took."""
    from longtail import runtime_env

    runtime_env.apply()  # the Python workers of the workload run this install's Python
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    try:
        _dump(partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if not partial.is_file() or partial.stat().st_size == 0:
        raise RuntimeError(f"the driver JVM wrote no class archive to {partial}")
    os.replace(partial, path)
    return time.perf_counter() - started


def _dump(partial: Path) -> None:
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    from longtail.sparkutil import BASE_CONF  # the stages' own settings

    options = f"-XX:ArchiveClassesAtExit={partial} -Xlog:cds=off -Xlog:cds+dynamic=off"
    with tempfile.TemporaryDirectory() as tmp:
        builder = SparkSession.builder.master("local[2]").appName("longtail-jvm-archive")
        for key, value in {**BASE_CONF, JAVA_OPTIONS: options}.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
        _workload(spark, Path(tmp))
        gateway = SparkContext._gateway
        proc = getattr(gateway, "proc", None)
        spark.stop()
        if gateway is not None:
            gateway.shutdown()
        if proc is not None:  # the JVM exits when its stdin closes, and dumps as it exits
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=300)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild an existing archive")
    args = parser.parse_args(argv)
    path = archive_path()
    if path is None:
        print("longtail: no java or pyspark here: no JVM class archive", file=sys.stderr)
        return 1
    if path.is_file() and not args.force:
        print(f"longtail: JVM class archive {path} (exists)")
        return 0
    seconds = build(path)
    print(f"longtail: JVM class archive {path} ({path.stat().st_size >> 20} MiB, {seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
