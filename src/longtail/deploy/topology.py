"""The local deployment, declared once as data: every service's argv, environment, log file,
health checks and dependencies. The manager (`longtail.deploy.manager`) only executes this
declaration; a test can compare docker/compose.yaml with it.

Where it runs (ports, folders, addresses; the LONGTAIL_* variables): `longtail.deploy.settings`.
What its processes' environments hold: `longtail.deploy.environment`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from longtail.deploy.environment import PG_ENV, airflow_env, spark_env
from longtail.deploy.secretstore import Secrets
from longtail.deploy.settings import DAG_ID, DB_NAME, DB_USER, LOOPBACK, PG_SUPERUSER, Settings


@dataclass(frozen=True)
class HealthCheck:
    """One probe, tried until it passes or the service's start timeout runs out.

    kind: `command` (argv exits 0), `http` (GET target answers 200), `airflow_component`
    (the api-server's health JSON at target: component `expect` healthy, with a heartbeat newer
    than the process), `spark_master` (target's JSON status ALIVE), `spark_worker` (target's
    JSON lists an ALIVE worker whose web UI is on port `expect`), `dag_parsed` (the REST API at
    target knows DAG `expect`; needs the admin's token).
    """

    kind: str
    target: str = ""
    argv: tuple[str, ...] = ()
    expect: str = ""


@dataclass(frozen=True)
class Service:
    """A process of the deployment (or, with oneshot, a setup command run to completion)."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    log: Path
    health: tuple[HealthCheck, ...] = ()
    depends_on: tuple[str, ...] = ()
    url: str | None = None
    binds: tuple[tuple[str, int], ...] = ()  # (host, port) it listens on
    run_as: str | None = None
    inherit_env: bool = True  # also the caller's environment (less NOT_INHERITED)
    oneshot: bool = False
    creates: Path | None = None  # a oneshot is skipped when this exists
    stop_argv: tuple[str, ...] = ()  # how to stop it (else SIGTERM to its process group)
    cwd: Path | None = None
    start_timeout_s: float = 300.0
    stop_timeout_s: float = 30.0
    owned_dirs: tuple[Path, ...] = field(default=())  # created (and owned by run_as) before start


def runas(user: str | None, argv: list[str]) -> tuple[str, ...]:
    """argv run as another OS user (`runuser -u user --`), or as is."""
    return tuple(["runuser", "-u", user, "--", *argv] if user else argv)


def spark_class(settings: Settings) -> str:
    """`spark-class` of the installed pyspark: the venv's bin, else pyspark's own bin/."""
    script = settings.venv_bin / "spark-class"
    if script.exists():
        return str(script)
    try:
        import pyspark

        return str(Path(pyspark.__file__).parent / "bin" / "spark-class")
    except ImportError:
        return "spark-class"


def services(
    settings: Settings, secrets: Secrets, base_env: Mapping[str, str], secrets_dir: Path
) -> tuple[Service, ...]:
    """The deployment, in start order (stop order is the reverse)."""
    s, p = settings, settings.ports
    logs, pg = s.logs, s.pg_bin
    af_env = MappingProxyType(airflow_env(s, secrets, base_env, secrets_dir))
    sp_env = MappingProxyType(spark_env(s, base_env))
    airflow = str(s.venv_bin / "airflow")
    health_url = f"{s.api_url}/api/v2/monitor/health"
    pg_dirs = (s.pg_root, s.pg_data, s.pg_socket_dir)
    after_migrate = ("airflow-db-migrate",)

    def component(name: str) -> HealthCheck:
        return HealthCheck("airflow_component", target=health_url, expect=name)

    session = (
        Service(
            name="spark-session",
            argv=(
                str(s.venv_bin / "python"),
                "-m",
                "longtail.session.server",
                "--master",
                s.spark_master_url,
                "--state-dir",
                str(s.session_dir),
                "--host",
                LOOPBACK,
                "--port",
                str(p.spark_session),
                "--idle-exit-s",
                "0",
            ),
            env=af_env,  # what a task's own driver would get
            log=logs / "spark-session.log",
            health=(HealthCheck("http", target=f"{s.session_url}/health"),),
            depends_on=("spark-worker",),
            url=s.session_url,
            binds=((LOOPBACK, p.spark_session),),
            cwd=s.spark_dir,
            start_timeout_s=180,
            stop_timeout_s=120,  # a running stage finishes first
        ),
    )
    return (
        Service(
            name="postgres-initdb",
            argv=runas(
                s.run_as,
                [
                    str(pg / "initdb"),
                    "-D",
                    str(s.pg_data),
                    "-U",
                    PG_SUPERUSER,
                    "--encoding=UTF8",
                    "--no-locale",
                    # the socket folder is private to the server's OS user (and root)
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                ],
            ),
            env=MappingProxyType(dict(PG_ENV)),
            log=logs / "postgres-initdb.log",
            run_as=s.run_as,
            inherit_env=False,
            oneshot=True,
            creates=s.pg_data / "PG_VERSION",
            owned_dirs=pg_dirs,
            start_timeout_s=180,
        ),
        Service(
            name="postgres",
            argv=runas(
                s.run_as,
                [
                    str(pg / "postgres"),
                    "-D",
                    str(s.pg_data),
                    "-h",
                    LOOPBACK,
                    "-p",
                    str(p.postgres),
                    "-k",
                    str(s.pg_socket_dir),
                    "-c",
                    "unix_socket_permissions=0700",
                    "-c",
                    "max_connections=100",
                ],
            ),
            env=MappingProxyType(dict(PG_ENV)),
            log=logs / "postgres.log",
            health=(
                HealthCheck(
                    "command",
                    target=f"{LOOPBACK}:{p.postgres}",
                    argv=(str(pg / "pg_isready"), "-q", "-h", LOOPBACK, "-p", str(p.postgres)),
                ),
            ),
            depends_on=("postgres-initdb",),
            url=f"postgresql://{DB_USER}@{LOOPBACK}:{p.postgres}/{DB_NAME}",
            binds=((LOOPBACK, p.postgres),),
            run_as=s.run_as,
            inherit_env=False,
            stop_argv=runas(
                s.run_as,
                [str(pg / "pg_ctl"), "stop", "-D", str(s.pg_data), "-m", "fast", "-w", "-t", "60"],
            ),
            owned_dirs=pg_dirs,
            start_timeout_s=120,
            stop_timeout_s=60,
        ),
        Service(
            name="postgres-bootstrap",
            argv=(
                str(s.venv_bin / "python"),
                "-m",
                "longtail.deploy.pgsetup",
                "--socket-dir",
                str(s.pg_socket_dir),
                "--port",
                str(p.postgres),
                "--superuser",
                PG_SUPERUSER,
                "--role",
                DB_USER,
                "--database",
                DB_NAME,
            ),
            env=MappingProxyType({**PG_ENV, "LONGTAIL_DEPLOY_DB_PASSWORD": secrets.pg_password}),
            log=logs / "postgres-bootstrap.log",
            depends_on=("postgres",),
            inherit_env=False,
            oneshot=True,
            start_timeout_s=60,
        ),
        Service(
            name="airflow-db-migrate",
            argv=(airflow, "db", "migrate"),
            env=af_env,
            log=logs / "airflow-db-migrate.log",
            depends_on=("postgres-bootstrap",),
            oneshot=True,
            cwd=s.airflow_home,
            start_timeout_s=600,
        ),
        Service(
            name="spark-master",
            argv=(
                spark_class(s),
                "org.apache.spark.deploy.master.Master",
                "--host",
                LOOPBACK,
                "--port",
                str(p.spark_master),
                "--webui-port",
                str(p.spark_master_ui),
            ),
            env=sp_env,
            log=logs / "spark-master.log",
            health=(HealthCheck("spark_master", target=f"{s.spark_master_ui}/json/"),),
            url=s.spark_master_ui,
            binds=((LOOPBACK, p.spark_master), (LOOPBACK, p.spark_master_ui)),
            cwd=s.spark_dir,
            start_timeout_s=180,
        ),
        Service(
            name="spark-worker",
            argv=(
                spark_class(s),
                "org.apache.spark.deploy.worker.Worker",
                s.spark_master_url,
                "--host",
                LOOPBACK,
                "--cores",
                str(s.worker_cores),
                "--memory",
                s.worker_memory,
                "--webui-port",
                str(p.spark_worker_ui),
                "--work-dir",
                str(s.spark_dir / "work"),
            ),
            env=sp_env,
            log=logs / "spark-worker.log",
            health=(
                HealthCheck(
                    "spark_worker",
                    target=f"{s.spark_master_ui}/json/",
                    expect=str(p.spark_worker_ui),
                ),
            ),
            depends_on=("spark-master",),
            url=s.spark_worker_ui,
            binds=((LOOPBACK, p.spark_worker_ui),),
            cwd=s.spark_dir,
            start_timeout_s=180,
        ),
        *(session if s.session else ()),
        Service(
            name="airflow-api-server",
            argv=(
                airflow,
                "api-server",
                "--host",
                LOOPBACK,
                "--port",
                str(p.airflow),
                "--workers",
                "1",
            ),
            env=af_env,
            log=logs / "airflow-api-server.log",
            health=(HealthCheck("http", target=health_url),),
            depends_on=after_migrate,
            url=s.api_url,
            binds=((LOOPBACK, p.airflow),),
            cwd=s.airflow_home,
        ),
        Service(
            name="airflow-scheduler",
            # logs are read from the shared AIRFLOW_HOME: no log server on 0.0.0.0:8793
            argv=(airflow, "scheduler", "--skip-serve-logs"),
            env=af_env,
            log=logs / "airflow-scheduler.log",
            health=(component("scheduler"),),
            depends_on=after_migrate,
            cwd=s.airflow_home,
        ),
        Service(
            name="airflow-dag-processor",
            argv=(airflow, "dag-processor"),
            env=af_env,
            log=logs / "airflow-dag-processor.log",
            health=(
                component("dag_processor"),
                HealthCheck("dag_parsed", target=s.api_url, expect=DAG_ID),
            ),
            depends_on=after_migrate,
            cwd=s.airflow_home,
        ),
        Service(
            name="airflow-triggerer",
            argv=(airflow, "triggerer", "--skip-serve-logs"),
            env=af_env,
            log=logs / "airflow-triggerer.log",
            health=(component("triggerer"),),
            depends_on=after_migrate,
            cwd=s.airflow_home,
        ),
    )


def by_name(declared: tuple[Service, ...]) -> dict[str, Service]:
    return {svc.name: svc for svc in declared}
