"""The environment and sizes of every Longtail Spark process, in one place (stdlib only: the DAG
file and the operator import it at parse time).

Set where Spark starts: `sparkutil.get_spark` (a local session: tests, benchmark, `make`) and
the DAG's spark-submit tasks (driver environment, and the executors' through
`spark.executorEnv.*`, `spark_launch.submit_settings`). Spark's Python workers inherit the driver's
environment, so the libraries read these before their first import there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

# Read at import by the libraries: implicit is slower (and warns) with a threaded BLAS; the text
# encoder is packaged (no download); Great Expectations must not phone home.
WORKER_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "GX_ANALYTICS_ENABLED": "false",
}
# The Spark driver's memory (implicit's ALS fit and the ranker's training run there), unless
# LONGTAIL_DRIVER_MEMORY says otherwise; the executors' likewise (LONGTAIL_EXECUTOR_MEMORY).
DRIVER_MEMORY = "4g"
EXECUTOR_MEMORY = "2g"


def driver_memory(environ: MutableMapping[str, str] = os.environ) -> str:
    return environ.get("LONGTAIL_DRIVER_MEMORY", DRIVER_MEMORY)


def executor_memory(environ: MutableMapping[str, str] = os.environ) -> str:
    return environ.get("LONGTAIL_EXECUTOR_MEMORY", EXECUTOR_MEMORY)


def apply(environ: MutableMapping[str, str] = os.environ) -> None:
    """Defaults for a process that starts Spark itself (a value already set wins)."""
    for key, value in WORKER_ENV.items():
        environ.setdefault(key, value)
    environ.setdefault("PYSPARK_PYTHON", sys.executable)
    environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
