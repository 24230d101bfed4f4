"""How a stage's Spark driver is launched, wherever it runs: where it binds, what the executors'
Python workers get, and the deployment's extra Spark settings (stdlib only).

Used by the DAG's spark-submit operator for each task and by the session server for its one
long-lived driver, so both paths start Spark with the same settings.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from urllib.parse import urlsplit

from longtail import jvm_archive
from longtail.runtime_env import WORKER_ENV

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# Settings every Python worker needs, wherever it runs (read at import by the libraries).
EXECUTOR_ENV = WORKER_ENV
PACKED_ENV_NAME = "longtail-env"


def is_loopback_master(master: str) -> bool:
    """True for local[...] and for a cluster master on this machine's loopback address."""
    if master.startswith("local"):
        return True
    host = urlsplit(master if "://" in master else f"spark://{master}").hostname or ""
    return host in _LOOPBACK


def submit_settings(
    master: str, env_vars: Mapping[str, str], environ: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str], str | None]:
    """(driver env, extra Spark conf, archives) for a stage submitted to ``master``.

    - The driver binds to loopback only when the master is local or on loopback; against a
      remote master it must advertise an address the executors can reach (SPARK_LOCAL_IP from
      the environment, else Spark's own choice).
    - Executors get EXECUTOR_ENV through spark.executorEnv.*.
    - LONGTAIL_SPARK_CORES_MAX caps each stage's cores on a standalone or Mesos cluster (by
      default an application takes every free core, so two stages never run side by side).
    - LONGTAIL_SPARK_CONF, a JSON object of Spark settings, is added to every stage's conf
      (cluster sizing such as spark.executor.instances, executor JVM options): a setting of the
      deployment, not of the DAG code.
    - Executors use the same Python as the driver (the same install on every worker), unless
      LONGTAIL_PYSPARK_ARCHIVE names a packed environment (venv-pack / conda-pack tarball): it
      is shipped with --archives and its python runs the executors' Python workers.
    """
    env = dict(env_vars)
    if is_loopback_master(master):
        env["SPARK_LOCAL_IP"] = "127.0.0.1"
    elif environ.get("SPARK_LOCAL_IP") and not environ["SPARK_LOCAL_IP"].startswith("127."):
        env["SPARK_LOCAL_IP"] = environ["SPARK_LOCAL_IP"]
    else:
        env.pop("SPARK_LOCAL_IP", None)
    conf = {f"spark.executorEnv.{k}": v for k, v in EXECUTOR_ENV.items()}
    if environ.get("LONGTAIL_SPARK_CORES_MAX"):  # share a standalone cluster between stages
        conf["spark.cores.max"] = str(int(environ["LONGTAIL_SPARK_CORES_MAX"]))
    conf.update(extra_spark_conf(environ.get("LONGTAIL_SPARK_CONF", "")))
    conf = jvm_archive.with_archive(conf, environ)  # the driver's class archive, if built
    archive = environ.get("LONGTAIL_PYSPARK_ARCHIVE")
    if archive:
        conf["spark.pyspark.python"] = f"./{PACKED_ENV_NAME}/bin/python"
        conf["spark.pyspark.driver.python"] = env.get("PYSPARK_DRIVER_PYTHON", sys.executable)
        env.pop("PYSPARK_PYTHON", None)
        return env, conf, f"{archive}#{PACKED_ENV_NAME}"
    return env, conf, None


def extra_spark_conf(raw: str) -> dict[str, str]:
    """LONGTAIL_SPARK_CONF parsed: a JSON object whose keys are spark.* settings."""
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"LONGTAIL_SPARK_CONF is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ValueError("LONGTAIL_SPARK_CONF must be a JSON object of Spark settings")
    bad = sorted(k for k in parsed if not str(k).startswith("spark."))
    if bad:
        raise ValueError(f"LONGTAIL_SPARK_CONF keys must be Spark settings (spark.*): {bad}")
    return {str(k): str(v) for k, v in parsed.items()}
