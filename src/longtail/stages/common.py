"""What every stage's main() does around its run(): parse, validate, start Spark, record."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pyspark.sql import SparkSession

from longtail import __version__, registry
from longtail.config import StageConfig
from longtail.errors import ERROR_PREFIX, PERMANENT_EXIT_CODE, PermanentError
from longtail.spark_jobs import counted_stage
from longtail.sparkutil import get_spark
from longtail.warehouse.layout import night_key
from longtail.warehouse.leases import read_lease
from longtail.warehouse.records import clear_failure, write_failure, write_record

Cfg = TypeVar("Cfg", bound=StageConfig)
log = logging.getLogger("longtail")


def stage_main(
    name: str,
    cfg_type: type[Cfg],
    run: Callable[[SparkSession, Cfg], dict[str, Any]],
    argv: list[str] | None = None,
) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    ds = "?"
    try:
        cfg = cfg_type.from_argv(argv if argv is not None else sys.argv[1:])
        ds = str(cfg.ds)
        spark = get_spark(f"longtail-{name}-{cfg.ds}")
        started = time.time()
        record = run_and_record(spark, name, cfg, run)
    except PermanentError as exc:
        # Same inputs, same outcome: say why in one line and exit with the code that tells the
        # scheduler not to retry. Nothing was published (every stage stages, audits, then swaps).
        log.error("%s ds=%s failed, not retryable", name, ds, exc_info=True)
        reason = " ".join(str(exc).split())  # one line, so wrappers can pick it out of a log
        print(f"{ERROR_PREFIX} {name} ds={ds}: {type(exc).__name__}: {reason}", file=sys.stderr)
        return PERMANENT_EXIT_CODE
    log.info("%s ds=%s done in %.1fs: %s", name, ds, time.time() - started, record.get("counts"))
    return 0


def run_and_record(
    spark: SparkSession, name: str, cfg: Cfg, run: Callable[[SparkSession, Cfg], dict[str, Any]]
) -> dict[str, Any]:
    """Run the stage and write its run record; on an exception, its failure record instead
    (`warehouse.records.write_failure`), so a night that fails before any gate still shows why."""
    started = time.time()
    try:
        # Retention deletes nothing of this night while the stage runs (leases.read_lease).
        with (
            counted_stage(spark, name, cfg.ds) as jobs,
            read_lease(spark, cfg.warehouse, night_key(cfg.ds)),
        ):
            record = run(spark, cfg)
    except Exception as exc:
        try:
            write_failure(spark, cfg.warehouse, cfg.ds, name, exc, isinstance(exc, PermanentError))
        except Exception:  # a report of the failure must never replace the failure itself
            log.warning("%s ds=%s: could not write its failure record", name, cfg.ds, exc_info=True)
        raise
    record = {
        "stage": name,
        "longtail_version": __version__,
        "config": cfg.to_dict(),
        "config_fingerprint": cfg.fingerprint(),
        "seconds": round(time.time() - started, 2),
        "spark_jobs": jobs,
        # where it ran: one application per stage under spark-submit, the session's otherwise
        "spark": {"master": spark.sparkContext.master, "app_id": spark.sparkContext.applicationId},
        **record,
    }
    write_record(spark, cfg.warehouse, cfg.ds, name, record)
    clear_failure(spark, cfg.warehouse, cfg.ds, name)  # an earlier attempt's, now superseded
    return record


def run_stage(spark: SparkSession, name: str, cfg: StageConfig) -> dict[str, Any]:
    """The registry's stage `name` in-process on `spark`, recorded like a spark-submit run."""
    return run_and_record(spark, name, cfg, registry.stage(name).load().run)
