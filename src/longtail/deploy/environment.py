"""The environment of the deployment's processes: what every Airflow process (and each task
it runs) and the Spark master and worker get, and what they never inherit from the caller."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from longtail.deploy.secretstore import Secrets
from longtail.deploy.settings import ADMIN_USER, LOOPBACK, Settings

SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)
# the postgres server's own environment: nothing inherited (no secrets, no venv)
PG_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
# inherited variables that would point an Airflow or Spark process somewhere else
NOT_INHERITED = ("AIRFLOW_HOME", "AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "SPARK_")


def airflow_env(
    settings: Settings, secrets: Secrets, base_env: Mapping[str, str], secrets_dir: Path
) -> dict[str, str]:
    """What every Airflow process (and each task it runs) gets: `make -s env`'s variables, then
    this deployment's Airflow settings, connection, landing and warehouse."""
    env = {k: v for k, v in base_env.items() if not k.startswith(NOT_INHERITED)}
    env.update(
        AIRFLOW_HOME=str(settings.airflow_home),
        AIRFLOW__CORE__DAGS_FOLDER=str(settings.repo / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM="2",
        # nothing runs on its own: longtail_nightly (catchup off) would otherwise start
        # yesterday's run as soon as it is parsed; unpause it or trigger it from the UI
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=str(settings.scheduled_runs),
        AIRFLOW__CORE__FERNET_KEY=secrets.fernet_key,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=settings.sql_alchemy_conn(secrets),
        AIRFLOW__API__HOST=LOOPBACK,
        AIRFLOW__API__PORT=str(settings.ports.airflow),
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__API__BASE_URL=settings.api_url,
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{settings.api_url}/execution/",
        # every component signs and checks tokens with the same keys
        AIRFLOW__API__SECRET_KEY=secrets.api_secret_key,
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.jwt_secret,
        # authentication on: one admin user, its password in a file outside the repo
        AIRFLOW__CORE__AUTH_MANAGER=SIMPLE_AUTH_MANAGER,
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{ADMIN_USER}:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(
            secrets_dir / "simple_auth_manager_passwords.json"
        ),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
        AIRFLOW_CONN_LONGTAIL_SPARK=settings.spark_connection(),
        LONGTAIL_WAREHOUSE=str(settings.warehouse),
        LONGTAIL_LANDING=str(settings.landing),
        SPARK_LOCAL_IP=LOOPBACK,
    )
    return env


def spark_env(settings: Settings, base_env: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in base_env.items() if not k.startswith(NOT_INHERITED)}
    env.update(
        SPARK_LOCAL_IP=LOOPBACK,
        SPARK_LOG_DIR=str(settings.spark_dir / "logs"),
        SPARK_PID_DIR=str(settings.spark_dir / "pids"),
        SPARK_WORKER_DIR=str(settings.spark_dir / "work"),
        SPARK_DAEMON_MEMORY="512m",  # the master and worker daemons themselves
        # no REST submission server on :6066 (unauthenticated, and not a declared port)
        SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false",
    )
    if base_env.get("PYSPARK_PYTHON"):
        env["PYSPARK_PYTHON"] = base_env["PYSPARK_PYTHON"]
    return env
