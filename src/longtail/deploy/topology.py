"""The local deployment, declared once as data: every service's argv, environment, log file,
health checks and dependencies. The manager (`longtail.deploy.manager`) only executes this
declaration; a test can compare docker/compose.yaml with it.

Everything listens on 127.0.0.1 only. Ports come from the environment:

| variable | default | what |
|---|---|---|
| LONGTAIL_PG_PORT | 55432 | PostgreSQL (Airflow's metadata DB) |
| LONGTAIL_AIRFLOW_PORT | 8080 | Airflow api-server (UI, REST, execution API) |
| LONGTAIL_SPARK_MASTER_PORT | 7077 | Spark standalone master (RPC) |
| LONGTAIL_SPARK_MASTER_UI_PORT | 8081 | Spark master web UI (JSON at /json/) |
| LONGTAIL_SPARK_WORKER_UI_PORT | 8082 | Spark worker web UI |

Other settings: LONGTAIL_SPARK_WORKER_MEMORY (8g), LONGTAIL_SPARK_WORKER_CORES (2),
LONGTAIL_WAREHOUSE (`.runtime/deploy/warehouse`), LONGTAIL_LANDING (`data/landing/sample`),
LONGTAIL_DEPLOY_DIR (the runtime folder, `.runtime/deploy`), LONGTAIL_DEPLOY_SCHEDULED_RUNS
(true; false: the scheduler creates no scheduled runs, only triggered ones and backfills).
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import quote

from longtail.deploy.secretstore import Secrets

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parents[3]
DAG_ID = "longtail_nightly"
ADMIN_USER = "admin"
DB_NAME = DB_USER = "airflow"
PG_SUPERUSER = "postgres"
PG_OS_USER = "postgres"  # the OS user that runs the server binaries when we are root
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)
# the postgres server's own environment: nothing inherited (no secrets, no venv)
PG_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
# inherited variables that would point an Airflow or Spark process somewhere else
NOT_INHERITED = ("AIRFLOW_HOME", "AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "SPARK_")


@dataclass(frozen=True)
class Ports:
    postgres: int = 55432
    airflow: int = 8080
    spark_master: int = 7077
    spark_master_ui: int = 8081
    spark_worker_ui: int = 8082

    ENV = MappingProxyType(
        {
            "postgres": "LONGTAIL_PG_PORT",
            "airflow": "LONGTAIL_AIRFLOW_PORT",
            "spark_master": "LONGTAIL_SPARK_MASTER_PORT",
            "spark_master_ui": "LONGTAIL_SPARK_MASTER_UI_PORT",
            "spark_worker_ui": "LONGTAIL_SPARK_WORKER_UI_PORT",
        }
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Ports:
        values = {}
        for attr, var in cls.ENV.items():
            raw = environ.get(var)
            if raw:
                port = int(raw)
                if not 0 < port < 65536:
                    raise ValueError(f"{var}={raw}: not a TCP port")
                values[attr] = port
        ports = cls(**values)
        taken = [p for p in ports.all() if ports.all().count(p) > 1]
        if taken:
            raise ValueError(f"two services on one port: {sorted(set(taken))}")
        return ports

    def all(self) -> list[int]:
        return [
            self.postgres,
            self.airflow,
            self.spark_master,
            self.spark_master_ui,
            self.spark_worker_ui,
        ]


def find_pg_bin() -> Path | None:
    """Debian's server binaries, newest major version first (never /usr/local/bin)."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", Path(path).parents[1].name)) or (0,)

    return Path(max(found, key=version)).parent if found else None


@dataclass(frozen=True)
class Settings:
    repo: Path
    runtime: Path
    ports: Ports
    venv_bin: Path
    pg_bin: Path
    warehouse: Path
    landing: Path
    worker_memory: str = "8g"
    worker_cores: int = 2
    run_as: str | None = None  # OS user for the postgres binaries (root -> postgres)
    scheduled_runs: bool = True

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, repo: Path | None = None
    ) -> Settings:
        env = os.environ if environ is None else environ
        repo = (repo or Path(env.get("LONGTAIL_REPO") or REPO)).resolve()
        runtime = Path(env.get("LONGTAIL_DEPLOY_DIR") or repo / ".runtime" / "deploy").resolve()
        venv_bin = repo / ".venv" / "bin"
        if not (venv_bin / "python").exists():
            venv_bin = Path(sys.executable).parent
        memory = env.get("LONGTAIL_SPARK_WORKER_MEMORY") or "8g"
        if not re.fullmatch(r"\d+[kmgtKMGT]?", memory):
            raise ValueError(f"LONGTAIL_SPARK_WORKER_MEMORY={memory}: expected e.g. 8g or 512m")
        return cls(
            repo=repo,
            runtime=runtime,
            ports=Ports.from_env(env),
            venv_bin=venv_bin,
            # before `up` installs the server, the path Debian bookworm's package will use
            pg_bin=find_pg_bin() or Path("/usr/lib/postgresql/15/bin"),
            warehouse=Path(env.get("LONGTAIL_WAREHOUSE") or runtime / "warehouse").resolve(),
            landing=Path(env.get("LONGTAIL_LANDING") or repo / "data/landing/sample").resolve(),
            worker_memory=memory,
            worker_cores=int(env.get("LONGTAIL_SPARK_WORKER_CORES") or 2),
            run_as=PG_OS_USER if os.geteuid() == 0 else None,
            scheduled_runs=(env.get("LONGTAIL_DEPLOY_SCHEDULED_RUNS") or "true").lower()
            not in ("false", "0", "no", "off"),
        )

    # folders, all inside the runtime folder
    @property
    def logs(self) -> Path:
        return self.runtime / "logs"

    @property
    def pids(self) -> Path:
        return self.runtime / "pids"

    @property
    def pg_root(self) -> Path:
        return self.runtime / "postgres"

    @property
    def pg_data(self) -> Path:
        return self.pg_root / "data"

    @property
    def pg_socket_dir(self) -> Path:
        return self.pg_root / "run"

    @property
    def airflow_home(self) -> Path:
        return self.runtime / "airflow"

    @property
    def spark_dir(self) -> Path:
        return self.runtime / "spark"

    @property
    def sample_landing(self) -> Path:
        return self.repo / "data" / "landing" / "sample"

    # addresses
    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.airflow}"

    @property
    def spark_master_url(self) -> str:
        return f"spark://{LOOPBACK}:{self.ports.spark_master}"

    @property
    def spark_master_ui(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.spark_master_ui}"

    @property
    def spark_worker_ui(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.spark_worker_ui}"

    def sql_alchemy_conn(self, secrets: Secrets) -> str:
        password = quote(secrets.pg_password, safe="")
        return (
            f"postgresql+psycopg2://{DB_USER}:{password}@{LOOPBACK}:{self.ports.postgres}/{DB_NAME}"
        )

    def spark_connection(self) -> str:
        return json.dumps(
            {
                "conn_type": "spark",
                "host": f"spark://{LOOPBACK}",
                "port": self.ports.spark_master,
                "extra": {"deploy-mode": "client"},
            }
        )


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
