"""The local deployment's declaration (longtail.deploy): services, ports, loopback binds, the
secrets file, pid records. Fast: nothing is started except one `sleep` for the pid-file test."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from longtail.deploy import procs, secretstore
from longtail.deploy.client import AirflowClient
from longtail.deploy.environment import SIMPLE_AUTH_MANAGER
from longtail.deploy.health import probe
from longtail.deploy.secretstore import Secrets
from longtail.deploy.settings import LOOPBACK, Ports, Settings
from longtail.deploy.topology import HealthCheck, by_name, services

REPO = Path(__file__).resolve().parents[3]
LONG_RUNNING = (
    "postgres",
    "spark-master",
    "spark-worker",
    "spark-session",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)
BASE_ENV = {
    "PATH": f"{REPO / '.venv' / 'bin'}:/usr/bin:/bin",
    "PYSPARK_PYTHON": str(REPO / ".venv" / "bin" / "python"),
    "HF_HUB_OFFLINE": "1",
    "GX_ANALYTICS_ENABLED": "false",
    # what `make -s env` prints for `make run`: the deployment must override these
    "AIRFLOW_HOME": str(REPO / ".airflow"),
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    "AIRFLOW_CONN_LONGTAIL_SPARK": '{"conn_type": "spark", "host": "local[2]"}',
}


def _settings(tmp_path: Path, **env: str) -> Settings:
    environ = {"LONGTAIL_DEPLOY_DIR": str(tmp_path / "runtime"), **env}
    return Settings.from_env(environ, repo=REPO)


def _declared(tmp_path: Path, **env: str):
    settings = _settings(tmp_path, **env)
    secrets = Secrets.generate()
    folder = tmp_path / "config" / "longtail" / "x"
    return settings, secrets, by_name(services(settings, secrets, BASE_ENV, folder))


def test_every_service_is_declared_with_a_log_and_a_health_check(tmp_path: Path) -> None:
    settings, _, declared = _declared(tmp_path)
    long_running = [s.name for s in declared.values() if not s.oneshot]
    assert long_running == list(LONG_RUNNING)
    for svc in declared.values():
        assert svc.log.parent == settings.logs
        assert svc.log.name == f"{svc.name}.log"
        assert all(d in declared for d in svc.depends_on), svc.name
        if not svc.oneshot:
            assert svc.health, f"{svc.name} has no health check"
    # every dependency comes earlier: the declared order is a start order
    names = list(declared)
    for svc in declared.values():
        assert all(names.index(d) < names.index(svc.name) for d in svc.depends_on)
    airflow = [n for n in LONG_RUNNING if n.startswith("airflow-")]
    assert [declared[n].argv[1] for n in airflow] == [
        "api-server",
        "scheduler",
        "dag-processor",
        "triggerer",
    ]
    for name in airflow:
        assert "airflow-db-migrate" in declared[name].depends_on
    assert declared["airflow-db-migrate"].argv[1:] == ("db", "migrate")
    assert declared["postgres"].depends_on == ("postgres-initdb",)
    assert declared["spark-worker"].depends_on == ("spark-master",)
    assert declared["spark-session"].depends_on == ("spark-worker",)
    # the session drives the cluster with the tasks' environment; its tasks are sent to it
    session = declared["spark-session"]
    assert session.argv[session.argv.index("--master") + 1] == settings.spark_master_url
    assert session.env["AIRFLOW_CONN_LONGTAIL_SPARK"] == settings.spark_connection()
    conn = json.loads(settings.spark_connection())
    assert conn["extra"]["session"] == "http://127.0.0.1:8083"


def test_without_the_session_each_task_submits_its_own_driver(tmp_path: Path) -> None:
    settings, _, declared = _declared(tmp_path, LONGTAIL_DEPLOY_SESSION="false")
    assert not settings.session
    assert "session" not in json.loads(settings.spark_connection())["extra"]
    assert "spark-session" not in declared


def test_health_checks(tmp_path: Path) -> None:
    settings, _, declared = _declared(tmp_path)
    kinds = {name: [c.kind for c in declared[name].health] for name in LONG_RUNNING}
    assert kinds == {
        "postgres": ["command"],
        "spark-master": ["spark_master"],
        "spark-worker": ["spark_worker"],
        "spark-session": ["http"],
        "airflow-api-server": ["http"],
        "airflow-scheduler": ["airflow_component"],
        "airflow-dag-processor": ["airflow_component", "dag_parsed"],
        "airflow-triggerer": ["airflow_component"],
    }
    health = f"{settings.api_url}/api/v2/monitor/health"
    assert declared["airflow-api-server"].health[0].target == health
    assert {
        declared[n].health[0].expect
        for n in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
    } == {"scheduler", "dag_processor", "triggerer"}
    assert declared["airflow-dag-processor"].health[1].expect == "longtail_nightly"
    assert declared["spark-master"].health[0].target == "http://127.0.0.1:8081/json/"
    assert declared["spark-worker"].health[0].expect == "8082"
    assert declared["spark-session"].health[0].target == "http://127.0.0.1:8083/health"
    assert Path(declared["postgres"].health[0].argv[0]).name == "pg_isready"


def test_default_ports_and_loopback_binds(tmp_path: Path) -> None:
    settings, _, declared = _declared(tmp_path)
    assert settings.ports == Ports(55432, 8080, 7077, 8081, 8082, 8083)
    binds = {b for svc in declared.values() for b in svc.binds}
    assert binds == {
        (LOOPBACK, 55432),
        (LOOPBACK, 8080),
        (LOOPBACK, 7077),
        (LOOPBACK, 8081),
        (LOOPBACK, 8082),
        (LOOPBACK, 8083),
    }
    pg = declared["postgres"].argv
    assert pg[pg.index("-h") + 1] == LOOPBACK and pg[pg.index("-p") + 1] == "55432"
    assert pg[pg.index("-k") + 1] == str(settings.pg_socket_dir)
    api = declared["airflow-api-server"].argv
    assert api[api.index("--host") + 1] == LOOPBACK and api[api.index("--port") + 1] == "8080"
    master = declared["spark-master"].argv
    assert master[master.index("--host") + 1] == LOOPBACK
    assert master[master.index("--port") + 1] == "7077"
    assert master[master.index("--webui-port") + 1] == "8081"
    worker = declared["spark-worker"].argv
    assert "spark://127.0.0.1:7077" in worker
    assert worker[worker.index("--host") + 1] == LOOPBACK
    assert worker[worker.index("--cores") + 1] == "2"
    assert worker[worker.index("--memory") + 1] == "8g"
    assert worker[worker.index("--work-dir") + 1] == str(settings.spark_dir / "work")
    for name in ("spark-master", "spark-worker"):
        assert declared[name].env["SPARK_LOCAL_IP"] == LOOPBACK  # the web UIs bind to it
        assert declared[name].argv[0].endswith("spark-class")
    # no log servers on 0.0.0.0
    for name in ("airflow-scheduler", "airflow-triggerer"):
        assert "--skip-serve-logs" in declared[name].argv


def test_ports_and_worker_from_env(tmp_path: Path) -> None:
    _, _, declared = _declared(
        tmp_path,
        LONGTAIL_PG_PORT="56000",
        LONGTAIL_AIRFLOW_PORT="18080",
        LONGTAIL_SPARK_MASTER_PORT="17077",
        LONGTAIL_SPARK_MASTER_UI_PORT="18081",
        LONGTAIL_SPARK_WORKER_UI_PORT="18082",
        LONGTAIL_SPARK_WORKER_MEMORY="2g",
    )
    env = declared["airflow-scheduler"].env
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@127.0.0.1:56000/airflow")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert json.loads(env["AIRFLOW_CONN_LONGTAIL_SPARK"])["port"] == 17077
    assert "spark://127.0.0.1:17077" in declared["spark-worker"].argv
    assert "2g" in declared["spark-worker"].argv
    assert declared["spark-worker"].health[0].target == "http://127.0.0.1:18081/json/"
    _, _, declared = _declared(tmp_path, LONGTAIL_DEPLOY_SCHEDULED_RUNS="false")
    assert declared["airflow-scheduler"].env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] == "False"
    with pytest.raises(ValueError, match="two services on one port"):
        Ports.from_env({"LONGTAIL_PG_PORT": "8080"})
    with pytest.raises(ValueError, match="not a TCP port"):
        Ports.from_env({"LONGTAIL_AIRFLOW_PORT": "70000"})


def test_airflow_environment(tmp_path: Path) -> None:
    settings, secrets, declared = _declared(tmp_path)
    envs = [declared[n].env for n in LONG_RUNNING if n.startswith("airflow-")]
    envs.append(declared["airflow-db-migrate"].env)
    assert all(e == envs[0] for e in envs), "every Airflow process gets the same environment"
    env = envs[0]
    assert env["AIRFLOW_HOME"] == str(settings.runtime / "airflow")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "dags")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "2"
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "True"
    assert env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] == "True"
    assert env["AIRFLOW__API__HOST"] == LOOPBACK
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
        f"postgresql+psycopg2://airflow:{secrets.pg_password}@127.0.0.1:55432/airflow"
    )
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == secrets.jwt_secret
    assert env["AIRFLOW__API__SECRET_KEY"] == secrets.api_secret_key
    # authentication on: the Simple auth manager, one admin, its password in a file
    assert env["AIRFLOW__CORE__AUTH_MANAGER"] == SIMPLE_AUTH_MANAGER
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    assert REPO not in passwords.parents
    # the Spark connection: the standalone master, client mode, the stages in the session
    assert json.loads(env["AIRFLOW_CONN_LONGTAIL_SPARK"]) == {
        "conn_type": "spark",
        "host": "spark://127.0.0.1",
        "port": 7077,
        "extra": {"deploy-mode": "client", "session": "http://127.0.0.1:8083"},
    }
    assert env["LONGTAIL_WAREHOUSE"] == str(settings.runtime / "warehouse")
    assert env["LONGTAIL_LANDING"] == str(REPO / "data" / "landing" / "sample")
    # `make -s env`'s variables are passed on
    assert env["PATH"] == BASE_ENV["PATH"]
    assert env["PYSPARK_PYTHON"] == BASE_ENV["PYSPARK_PYTHON"]
    assert env["HF_HUB_OFFLINE"] == "1"
    # postgres gets none of it
    pg = declared["postgres"]
    assert not pg.inherit_env and not any(k.startswith("AIRFLOW") for k in pg.env)
    assert secrets.pg_password not in " ".join(declared["postgres-bootstrap"].argv)


def test_runtime_state_stays_in_the_runtime_folder(tmp_path: Path) -> None:
    settings = Settings.from_env({}, repo=REPO)
    assert settings.runtime == REPO / ".runtime" / "deploy"
    assert ".runtime/" in (REPO / ".gitignore").read_text().splitlines()
    settings, _, declared = _declared(tmp_path)
    for folder in (settings.pg_data, settings.pg_socket_dir, settings.airflow_home):
        assert settings.runtime in folder.parents
    pg_bin = declared["postgres"].argv[declared["postgres"].argv.index("-D") - 1]
    assert pg_bin.startswith("/usr/lib/postgresql/")  # Debian's, not /usr/local/bin
    if os.geteuid() == 0:  # initdb refuses root: the server binaries run as postgres
        for name in ("postgres-initdb", "postgres"):
            assert declared[name].argv[:4] == ("runuser", "-u", "postgres", "--")
            assert declared[name].run_as == "postgres"
        assert declared["postgres"].stop_argv[:4] == ("runuser", "-u", "postgres", "--")
    assert declared["postgres"].stop_argv[-7:-3] == ("-D", str(settings.pg_data), "-m", "fast")


def test_secrets_file_outside_the_repo_private_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    folder = secretstore.secrets_dir(REPO)
    assert folder.parent == tmp_path / "xdg" / "longtail"
    assert folder.name == secretstore.repo_key(REPO) and len(folder.name) == 12
    assert REPO not in folder.parents
    first = secretstore.load_or_create(folder)
    path = folder / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert secretstore.load_or_create(folder) == first  # generated once, reused
    assert len({first.pg_password, first.admin_password, first.jwt_secret}) == 3
    os.chmod(path, 0o644)
    assert secretstore.load_or_create(folder) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # tightened again
    pw = secretstore.write_passwords_file(folder, "admin", first.admin_password)
    assert json.loads(pw.read_text()) == {"admin": first.admin_password}
    assert stat.S_IMODE(pw.stat().st_mode) == 0o600
    # without XDG_CONFIG_HOME: ~/.config
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert secretstore.secrets_dir(REPO).parent == tmp_path / "home" / ".config" / "longtail"
    # never inside the repository
    monkeypatch.setenv("XDG_CONFIG_HOME", str(REPO / ".runtime"))
    with pytest.raises(secretstore.SecretsError, match="inside the repository"):
        secretstore.secrets_dir(REPO)


def test_pid_record_checks_the_start_time(tmp_path: Path) -> None:
    proc, record = procs.spawn(
        "sleeper",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        os.environ,
        tmp_path / "logs" / "sleeper.log",
    )
    try:
        path = tmp_path / "pids" / "sleeper.pid"
        procs.write_pid(path, record)
        again = procs.read_pid(path)
        assert again == record
        assert procs.process_of(again) is not None
        assert os.getpgid(proc.pid) == proc.pid  # its own process group
        # the same pid with another start time is a recycled pid: not ours, never signalled
        recycled = procs.PidRecord("sleeper", record.pid, record.create_time - 3600)
        assert procs.process_of(recycled) is None
        procs.signal_group(recycled, 15)
        assert proc.poll() is None
        signalled, survivors = procs.terminate([record], timeout_s=10)
        assert [p.pid for p in signalled] == [proc.pid] and not survivors
        assert proc.wait(timeout=10) is not None
        assert procs.process_of(record) is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert procs.read_pid(tmp_path / "pids" / "missing.pid") is None
    (tmp_path / "pids" / "torn.pid").write_text("{not json")
    assert procs.read_pid(tmp_path / "pids" / "torn.pid") is None


def test_probes_report_what_they_saw() -> None:
    ok, seen = probe(HealthCheck("command", argv=(sys.executable, "-c", "pass")))
    assert ok and "exit 0" in seen
    ok, seen = probe(HealthCheck("http", target="http://127.0.0.1:9/none"))
    assert not ok and seen  # nothing listens on the discard port: refused, not raised
    client = AirflowClient("http://127.0.0.1:9", "admin", "x", timeout_s=2)
    ok, seen = probe(HealthCheck("dag_parsed", target="", expect="d"), client=client)
    assert not ok
