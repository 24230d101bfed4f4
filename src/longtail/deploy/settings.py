"""Where the local deployment runs: its ports, folders and addresses, from the environment.

Everything listens on 127.0.0.1 only. Ports come from the environment:

| variable | default | what |
|---|---|---|
| LONGTAIL_PG_PORT | 55432 | PostgreSQL (Airflow's metadata DB) |
| LONGTAIL_AIRFLOW_PORT | 8080 | Airflow api-server (UI, REST, execution API) |
| LONGTAIL_SPARK_MASTER_PORT | 7077 | Spark standalone master (RPC) |
| LONGTAIL_SPARK_MASTER_UI_PORT | 8081 | Spark master web UI (JSON at /json/) |
| LONGTAIL_SPARK_WORKER_UI_PORT | 8082 | Spark worker web UI |
| LONGTAIL_SPARK_SESSION_PORT | 8083 | the session server running the stages (`longtail.session`) |

Other settings: LONGTAIL_SPARK_WORKER_MEMORY (8g), LONGTAIL_SPARK_WORKER_CORES (2),
LONGTAIL_WAREHOUSE (`.runtime/deploy/warehouse`), LONGTAIL_LANDING (`data/landing/sample`),
LONGTAIL_DEPLOY_DIR (the runtime folder, `.runtime/deploy`), LONGTAIL_DEPLOY_SCHEDULED_RUNS
(true; false: the scheduler creates no scheduled runs, only triggered ones and backfills),
LONGTAIL_DEPLOY_SESSION (true: the stages run in one long-lived Spark driver on the cluster;
false: each task spark-submits its own driver, as a cluster shared with other applications needs).
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from urllib.parse import quote

from longtail.deploy.secretstore import Secrets
from longtail.session.client import SESSION_EXTRA

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parents[3]
DAG_ID = "longtail_nightly"
ADMIN_USER = "admin"
DB_NAME = DB_USER = "airflow"
PG_SUPERUSER = "postgres"
PG_OS_USER = "postgres"  # the OS user that runs the server binaries when we are root


@dataclass(frozen=True)
class Ports:
    postgres: int = 55432
    airflow: int = 8080
    spark_master: int = 7077
    spark_master_ui: int = 8081
    spark_worker_ui: int = 8082
    spark_session: int = 8083

    ENV = MappingProxyType(
        {
            "postgres": "LONGTAIL_PG_PORT",
            "airflow": "LONGTAIL_AIRFLOW_PORT",
            "spark_master": "LONGTAIL_SPARK_MASTER_PORT",
            "spark_master_ui": "LONGTAIL_SPARK_MASTER_UI_PORT",
            "spark_worker_ui": "LONGTAIL_SPARK_WORKER_UI_PORT",
            "spark_session": "LONGTAIL_SPARK_SESSION_PORT",
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
            self.spark_session,
        ]


def _flag(raw: str | None, default: bool = True) -> bool:
    return default if not raw else raw.lower() not in ("false", "0", "no", "off")


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
    session: bool = True  # the stages run in the session server (else one spark-submit each)

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
            scheduled_runs=_flag(env.get("LONGTAIL_DEPLOY_SCHEDULED_RUNS")),
            session=_flag(env.get("LONGTAIL_DEPLOY_SESSION")),
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
    def session_dir(self) -> Path:
        return self.runtime / "session"

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
    def session_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.spark_session}"

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
                # the session extra sends every task to the session server (longtail.session)
                "extra": {"deploy-mode": "client"}
                | ({SESSION_EXTRA: self.session_url} if self.session else {}),
            }
        )
