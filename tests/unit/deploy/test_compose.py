"""docker/compose.yaml mirrors `make up`: the services, commands, Airflow and Spark environment,
health checks, start order, published ports and shared volumes of `longtail.deploy.topology`.

No Docker here: the file is read with PyYAML, interpolated like compose does (`${VAR:-default}`,
`${VAR:?error}`) and compared with `topology.services(...)` built the way the manager builds it
(Settings from an environment, generated secrets, the secrets folder). Every difference is named
in a table below with its reason; anything else that differs fails the test.
"""

from __future__ import annotations

import copy
import fnmatch
import importlib.util
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from longtail.deploy import secretstore
from longtail.deploy.environment import airflow_env, spark_env
from longtail.deploy.manager import make_env
from longtail.deploy.secretstore import Secrets
from longtail.deploy.settings import LOOPBACK, Ports, Settings
from longtail.deploy.topology import Service, by_name, services, spark_class

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"

# topology service -> compose service; None: no container of its own, for the reason given
NAMES: dict[str, str | None] = {
    "postgres-initdb": None,
    "postgres": "postgres",
    "postgres-bootstrap": None,
    "airflow-db-migrate": "airflow-init",
    "spark-master": "spark-master",
    "spark-worker": "spark-worker",
    "spark-session": None,
    "airflow-api-server": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
NO_COUNTERPART = {
    "postgres-initdb": "the official postgres image runs initdb on the first start of an empty "
    "data volume (POSTGRES_INITDB_ARGS carries the topology's initdb options)",
    "postgres-bootstrap": "the same first start runs docker/postgres-init/*.sql: the role and "
    "database that `python -m longtail.deploy.pgsetup` creates",
    "spark-session": "in the containers each task spark-submits its own driver from the "
    "scheduler container (the connection has no session extra): the long-lived session is "
    "`make up`'s, where the driver and the cluster share one machine",
}
COMPOSE_ONLY = {
    "landing-sample": "`make up` writes the sample landing itself before it starts any service "
    "(manager._ensure_landing); here a one-shot writes it into the landing volume",
}
# compose dependencies the topology does not have: {service: {dependency: (condition, reason)}}
EXTRA_DEPENDS = {
    "scheduler": {
        "landing-sample": (
            "service_completed_successfully",
            "its tasks read the landing, which `make up` writes before anything starts",
        )
    },
}

# the container layout (docker/Dockerfile and the named volumes of compose.yaml)
APP = "/opt/longtail"
AIRFLOW_HOME = "/opt/airflow"
WAREHOUSE = "/data/warehouse"
LANDING_MOUNT = "/data/landing"
LANDING = f"{LANDING_MOUNT}/sample"
SPARK_DIR = "/var/lib/longtail/spark"
PASSWORDS_FILE = f"/home/longtail/.config/longtail/{secretstore.PASSWORDS_FILE}"
HEALTHCHECK = ["python", f"{APP}/docker/healthcheck.py"]
# each server listens on its own default port inside its container (Ports attribute -> port)
CONTAINER_PORT = {
    "postgres": 5432,
    "airflow": 8080,
    "spark_master": 7077,
    "spark_master_ui": 8080,
    "spark_worker_ui": 8081,
}
# postgres arguments the official image sets itself (its own PGDATA, listen_addresses='*' in
# its network, port 5432, socket folder /var/run/postgresql): the rest must be the same
PG_IMAGE_FLAGS = {"-D", "-h", "-p", "-k"}
# topology health checks that stay `make up`'s: a one-time wait that needs the admin's token
NOT_MIRRORED_CHECKS = {"dag_parsed"}
# an Airflow component's health (the api-server's summary locally): its own job, in its container
JOB_TYPE = {
    "scheduler": "SchedulerJob",
    "dag_processor": "DagProcessorJob",
    "triggerer": "TriggererJob",
}
# compose environment the topology does not set: {service: {key: reason}}
EXTRA_ENV = {
    "api-server": {
        "LONGTAIL_ADMIN_PASSWORD": "docker/entrypoint.sh writes the Simple auth manager's "
        "password file from it (`make up` writes it beside secrets.json), then drops it",
    },
}
SECRET_VARS = {f"LONGTAIL_{f.name.upper()}": f.name for f in fields(Secrets)}
CUSTOM = {
    "LONGTAIL_PG_PORT": "56000",
    "LONGTAIL_AIRFLOW_PORT": "18080",
    "LONGTAIL_SPARK_MASTER_PORT": "17077",
    "LONGTAIL_SPARK_MASTER_UI_PORT": "18081",
    "LONGTAIL_SPARK_WORKER_UI_PORT": "18082",
    "LONGTAIL_SPARK_WORKER_MEMORY": "2g",
    "LONGTAIL_SPARK_WORKER_CORES": "3",
    "LONGTAIL_DEPLOY_SCHEDULED_RUNS": "False",
}

Diff = Callable[[str, str], str]  # (topology value, compose service) -> the compose value


def airflow_differences(s: Settings) -> dict[str, tuple[str, Diff]]:
    """Airflow keys whose value differs in compose: (why, the expected compose value)."""
    p = s.ports
    return {
        "AIRFLOW_HOME": (
            "path: the named volume airflow-home, shared by every Airflow container like the "
            "runtime folder locally (the api-server reads the task logs the scheduler writes)",
            lambda v, svc: AIRFLOW_HOME,
        ),
        "AIRFLOW__CORE__DAGS_FOLDER": (
            "path: the project in the image",
            lambda v, svc: f"{APP}/dags",
        ),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
            "host and port: the postgres service on its container port",
            lambda v, svc: v.replace(f"@{LOOPBACK}:{p.postgres}/", "@postgres:5432/"),
        ),
        "AIRFLOW__API__HOST": (
            "host: every address of the api-server's container (other containers call it); "
            "published on 127.0.0.1 only",
            lambda v, svc: "0.0.0.0",
        ),
        "AIRFLOW__API__PORT": (
            "port: the container port, published on LONGTAIL_AIRFLOW_PORT",
            lambda v, svc: "8080",
        ),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (
            "host: task runners in the scheduler container reach the api-server by its name",
            lambda v, svc: "http://api-server:8080/execution/",
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": (
            "path: written by docker/entrypoint.sh in the api-server container",
            lambda v, svc: PASSWORDS_FILE,
        ),
        "AIRFLOW_CONN_LONGTAIL_SPARK": (
            "host and port: the spark-master service; no session extra (no spark-session "
            "container: each task spark-submits its own driver)",
            lambda v, svc: json.dumps(
                {
                    **json.loads(v),
                    "host": "spark://spark-master",
                    "port": 7077,
                    "extra": {"deploy-mode": "client"},
                }
            ),
        ),
        "LONGTAIL_WAREHOUSE": ("path: the warehouse volume", lambda v, svc: WAREHOUSE),
        "LONGTAIL_LANDING": ("path: the landing volume (landing-sample)", lambda v, svc: LANDING),
        "SPARK_LOCAL_IP": (
            "host: the container's own hostname, never loopback: the Spark driver runs in the "
            "scheduler container and the executors in spark-worker connect back to it",
            lambda v, svc: svc,
        ),
    }


def spark_differences(s: Settings) -> dict[str, tuple[str, Diff]]:
    def folder(v: str, svc: str) -> str:
        return v.replace(str(s.spark_dir), SPARK_DIR)

    return {
        "SPARK_LOG_DIR": ("path: in the container", folder),
        "SPARK_PID_DIR": ("path: in the container", folder),
        "SPARK_WORKER_DIR": ("path: in the container", folder),
        "SPARK_LOCAL_IP": (
            "host: the container's own hostname (the master, the worker and its executors "
            "listen on the compose network)",
            lambda v, svc: svc,
        ),
    }


def arg_map(s: Settings) -> dict[str, dict[str, str]]:
    """Per compose service: topology argument -> compose argument (hosts, ports, folders)."""
    p = s.ports
    exe = {str(s.venv_bin / "airflow"): "airflow", spark_class(s): "spark-class"}
    return {
        "api-server": {**exe, LOOPBACK: "0.0.0.0", str(p.airflow): "8080"},
        "scheduler": exe,
        "dag-processor": exe,
        "triggerer": exe,
        "airflow-init": exe,
        "spark-master": {
            **exe,
            LOOPBACK: "spark-master",
            str(p.spark_master): "7077",
            str(p.spark_master_ui): "8080",
        },
        "spark-worker": {
            **exe,
            s.spark_master_url: "spark://spark-master:7077",
            LOOPBACK: "spark-worker",
            str(p.spark_worker_ui): "8081",
            str(s.spark_dir / "work"): f"{SPARK_DIR}/work",
        },
        "postgres": {
            str(s.pg_bin / "postgres"): "postgres",
            str(s.pg_bin / "pg_isready"): "pg_isready",
            str(p.postgres): "5432",
        },
    }


# ------------------------------------------------------------------ compose's interpolation


class MissingVariable(KeyError):
    pass


_VAR = re.compile(
    r"\$(?:(?P<dollar>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_]\w*))"
)


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """compose's variable substitution: $$, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR?error} (with a colon an empty value counts as unset)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m["dollar"]:
            return "$"
        name, op = m["braced"] or m["named"], m["op"] or ""
        found = env.get(name)
        missing = not found if op.startswith(":") else found is None
        if not missing:
            return str(found)
        if op.endswith("-"):
            return m["arg"]
        if op.endswith("?"):
            raise MissingVariable(f"{name}: {m['arg']}")
        return ""

    return _VAR.sub(one, value)


# ----------------------------------------------------------------------------- the two sides


@dataclass
class Pair:
    settings: Settings
    secrets: Secrets
    secrets_dir: Path
    declared: dict[str, Service]
    compose: dict[str, Any]  # the compose services, interpolated


def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def secret_env(secrets: Secrets) -> dict[str, str]:
    return {var: getattr(secrets, name) for var, name in SECRET_VARS.items()}


def make_pair(tmp_path: Path, environ: Mapping[str, str]) -> Pair:
    """Both sides for one environment (docker/.env, or the shell's for `make up`)."""
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    settings = Settings.from_env(
        {"LONGTAIL_DEPLOY_DIR": str(tmp_path / "runtime"), **environ}, repo=repo
    )
    folder = secretstore.secrets_dir(settings.repo, {"XDG_CONFIG_HOME": str(tmp_path / "config")})
    secrets = Secrets.generate()
    # base_env {}: only what the topology itself sets (`make -s env`'s part is the image's ENV)
    declared = by_name(services(settings, secrets, {}, folder))
    compose = interpolate(raw_compose()["services"], {**environ, **secret_env(secrets)})
    return Pair(settings, secrets, folder, declared, compose)


@pytest.fixture(params=["defaults", "custom"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Pair:
    return make_pair(tmp_path, {} if request.param == "defaults" else CUSTOM)


def counterpart(pair: Pair) -> dict[str, Service]:
    """compose name -> topology service, for the services that have a container."""
    return {NAMES[name]: svc for name, svc in pair.declared.items() if NAMES.get(name)}


def is_airflow(pair: Pair, svc: Service) -> bool:
    return dict(svc.env) == airflow_env(pair.settings, pair.secrets, {}, pair.secrets_dir)


def is_spark(pair: Pair, svc: Service) -> bool:
    return dict(svc.env) == spark_env(pair.settings, {})


def environment(svc: Mapping[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def depends(svc: Mapping[str, Any]) -> dict[str, str]:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {k: (v or {}).get("condition", "service_started") for k, v in deps.items()}


def mounts(svc: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """container path -> (source, mode) of a service's short-syntax volumes."""
    out = {}
    for item in svc.get("volumes") or []:
        source, target, *mode = item.split(":")
        out[target] = (source, mode[0] if mode else "rw")
    return out


def seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m)", value)
    assert m, value
    return int(m[1]) * {"ms": 0.001, "s": 1, "m": 60}[m[2]]


# -------------------------------------------------------------------------------- the checks


def check_services(pair: Pair) -> None:
    assert set(NAMES) == set(pair.declared), "map every topology service in NAMES"
    assert {n for n, c in NAMES.items() if c is None} == set(NO_COUNTERPART)
    expected = {c for c in NAMES.values() if c} | set(COMPOSE_ONLY)
    assert set(pair.compose) == expected


def check_commands(pair: Pair) -> None:
    maps = arg_map(pair.settings)
    for name, svc in counterpart(pair).items():
        argv = list(svc.argv)
        if argv[0] == "runuser":  # `make up` as root: the server binaries run as postgres
            argv = argv[argv.index("--") + 1 :]
        if name == "postgres":
            rest = argv[1:]
            argv = argv[:1] + [
                a
                for i, a in enumerate(rest)
                if a not in PG_IMAGE_FLAGS and (i == 0 or rest[i - 1] not in PG_IMAGE_FLAGS)
            ]
        want = [maps[name].get(a, a) for a in argv]
        assert pair.compose[name].get("command") == want, name
    sample = pair.compose["landing-sample"]["command"]
    assert sample == ["python", "-m", "longtail.sample", "--out", LANDING]


def check_environment(pair: Pair) -> None:
    s = pair.settings
    for name, svc in counterpart(pair).items():
        if is_airflow(pair, svc):
            differs = airflow_differences(s)
        elif is_spark(pair, svc):
            differs = spark_differences(s)
        else:  # postgres: the image's own environment
            continue
        env = environment(pair.compose[name])
        missing = set(svc.env) - set(env)
        assert not missing, f"{name} lacks {sorted(missing)}"
        extra = set(env) - set(svc.env) - set(EXTRA_ENV.get(name, {}))
        assert not extra, f"{name} sets {sorted(extra)}, which the topology does not"
        for key, value in svc.env.items():
            want = differs[key][1](value, name) if key in differs else value
            got = env[key]
            if key.startswith("AIRFLOW_CONN_"):
                want, got = json.loads(want), json.loads(got)
            assert got == want, f"{name}: {key}"
        assert pair.compose[name].get("hostname") == name
        assert not env["SPARK_LOCAL_IP"].startswith("127.")
    for name, extra in EXTRA_ENV.items():
        assert set(extra) <= set(environment(pair.compose[name]))
    api = environment(pair.compose["api-server"])
    assert api["LONGTAIL_ADMIN_PASSWORD"] == pair.secrets.admin_password
    assert not any(
        "LONGTAIL_ADMIN_PASSWORD" in environment(svc)
        for name, svc in pair.compose.items()
        if name != "api-server"
    )


def check_health(pair: Pair) -> None:
    s, p = pair.settings, pair.settings.ports
    urls = {s.api_url: "http://api-server:8080", s.spark_master_ui: "http://spark-master:8080"}
    ports = {str(p.spark_worker_ui): "8081"}
    for name, svc in counterpart(pair).items():
        compose = pair.compose[name]
        if svc.oneshot:
            assert "healthcheck" not in compose and "ports" not in compose, name
            continue
        tests = []
        for check in svc.health:
            if check.kind in NOT_MIRRORED_CHECKS:
                continue
            if check.kind == "command":
                tests.append(["CMD", *(arg_map(s)[name].get(a, a) for a in check.argv)])
            elif check.kind == "airflow_component":
                job = JOB_TYPE[check.expect]
                tests.append(["CMD", "airflow", "jobs", "check", "--job-type", job, "--local"])
            else:
                target = check.target
                for local, there in urls.items():
                    if target.startswith(local):
                        target = there + target[len(local) :]
                expect = [ports.get(check.expect, check.expect)] if check.expect else []
                tests.append(["CMD", *HEALTHCHECK, check.kind, target, *expect])
        assert len(tests) == 1, name
        health = compose.get("healthcheck") or {}
        assert health.get("test") == tests[0], name
        assert seconds(health["start_period"]) == svc.start_timeout_s, name
        assert seconds(compose["stop_grace_period"]) == svc.stop_timeout_s, name
    assert "healthcheck" not in pair.compose["landing-sample"]


def check_depends(pair: Pair) -> None:
    def expected(name: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for dep in pair.declared[name].depends_on:
            if NAMES[dep] is None:  # done by the postgres image: its own dependencies
                out.update(expected(dep))
            else:
                oneshot = pair.declared[dep].oneshot
                condition = "service_completed_successfully" if oneshot else "service_healthy"
                out[str(NAMES[dep])] = condition
        return out

    for name in pair.declared:
        target = NAMES[name]
        if target is None:
            continue
        want = expected(name)
        want.update({d: cond for d, (cond, _) in EXTRA_DEPENDS.get(target, {}).items()})
        assert depends(pair.compose[target]) == want, target
    assert not depends(pair.compose["landing-sample"])


def check_ports(pair: Pair) -> None:
    attr_of = {getattr(pair.settings.ports, attr): attr for attr in Ports.ENV}
    for name, svc in counterpart(pair).items():
        want = {
            f"{LOOPBACK}:{port}:{CONTAINER_PORT[attr_of[port]]}"
            for host, port in svc.binds
            if host == LOOPBACK
        }
        assert len(want) == len(svc.binds), name
        assert set(pair.compose[name].get("ports") or []) == want, name
    for name, svc in pair.compose.items():
        for port in svc.get("ports") or []:
            assert isinstance(port, str) and port.startswith(f"{LOOPBACK}:"), (name, port)


def check_volumes(pair: Pair) -> None:
    for name, svc in counterpart(pair).items():
        compose = pair.compose[name]
        if svc.cwd is not None:
            where = {pair.settings.airflow_home: AIRFLOW_HOME, pair.settings.spark_dir: SPARK_DIR}
            assert compose.get("working_dir") == where[svc.cwd], name
        if not (is_airflow(pair, svc) or is_spark(pair, svc)):
            continue
        found = mounts(compose)
        assert found.get(WAREHOUSE) == ("warehouse", "rw"), name  # executors write it
        assert found.get(LANDING_MOUNT) == ("landing", "rw"), name
        if is_airflow(pair, svc):
            assert found.get(AIRFLOW_HOME) == ("airflow-home", "rw"), name
            env = environment(compose)
            assert env["LONGTAIL_WAREHOUSE"] == WAREHOUSE
            assert env["LONGTAIL_LANDING"].startswith(f"{LANDING_MOUNT}/")
    assert mounts(pair.compose["landing-sample"]).get(LANDING_MOUNT) == ("landing", "rw")
    assert set(raw_compose()["volumes"]) >= {"warehouse", "landing", "airflow-home"}


CHECKS = (
    check_services,
    check_commands,
    check_environment,
    check_health,
    check_depends,
    check_ports,
    check_volumes,
)


# --------------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_compose_mirrors_the_topology(pair: Pair, check: Callable[[Pair], None]) -> None:
    check(pair)


def _mutated(pair: Pair, change: Callable[[dict[str, Any]], None]) -> Pair:
    compose = copy.deepcopy(pair.compose)
    change(compose)
    return Pair(pair.settings, pair.secrets, pair.secrets_dir, pair.declared, compose)


MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], Callable[[Pair], None]]] = {
    "no executor in the scheduler": (
        lambda c: c["scheduler"]["environment"].pop("AIRFLOW__CORE__EXECUTOR"),
        check_environment,
    ),
    "another JWT secret in the triggerer": (
        lambda c: c["triggerer"]["environment"].update(AIRFLOW__API_AUTH__JWT_SECRET="x"),
        check_environment,
    ),
    "loopback driver": (
        lambda c: c["scheduler"]["environment"].update(SPARK_LOCAL_IP="127.0.0.1"),
        check_environment,
    ),
    "scheduler serves logs": (
        lambda c: c["scheduler"].update(command=["airflow", "scheduler"]),
        check_commands,
    ),
    "api-server on all host addresses": (
        lambda c: c["api-server"].update(ports=["8080:8080"]),
        check_ports,
    ),
    "worker does not wait for the master": (
        lambda c: c["spark-worker"].pop("depends_on"),
        check_depends,
    ),
    "no health check": (lambda c: c["dag-processor"].pop("healthcheck"), check_health),
    "warehouse not shared": (lambda c: c["spark-worker"].update(volumes=[]), check_volumes),
    "extra service": (lambda c: c.update(flower={}), check_services),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_the_checks_catch_a_drift(tmp_path: Path, mutation: str) -> None:
    pair = make_pair(tmp_path, {})
    change, check = MUTATIONS[mutation]
    check(pair)
    with pytest.raises(AssertionError):
        check(_mutated(pair, change))


def test_secrets_come_from_the_env_file_only(tmp_path: Path) -> None:
    lines = COMPOSE.read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    for var in SECRET_VARS:
        assert f"${{{var}:?" in text, var
        # nowhere but as ${VAR:?error} (or as the name of a variable that gets it)
        rest = re.sub(rf"\$\{{{var}:\?|^\s*{var}:", "", text, flags=re.M)
        assert var not in rest, f"{var}: only as ${{{var}:?...}}"
    services_ = raw_compose()["services"]
    for var in SECRET_VARS:
        env = {k: "x" for k in SECRET_VARS if k != var}
        with pytest.raises(MissingVariable, match=var):
            interpolate(services_, env)
        with pytest.raises(MissingVariable, match=var):  # an empty value counts as missing
            interpolate(services_, {**env, var: ""})
    example = {}
    for line in (DOCKER / "env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            example[key.strip()] = value.strip()
    assert {k: v for k, v in example.items() if k in SECRET_VARS} == dict.fromkeys(SECRET_VARS, "")
    assert set(example) == set(SECRET_VARS)
    commented = re.findall(r"^# (LONGTAIL_\w+)=", (DOCKER / "env.example").read_text(), re.M)
    assert set(Ports.ENV.values()) <= set(commented)
    assert ".env" in (DOCKER / ".gitignore").read_text().split()


@pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX shell")
def test_gen_env_writes_every_secret_privately(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    out = tmp_path / ".env"
    done = subprocess.run(
        ["sh", str(DOCKER / "gen-env.sh"), str(out)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    values = dict(
        line.split("=", 1) for line in out.read_text().splitlines() if not line.startswith("#")
    )
    assert set(values) == set(SECRET_VARS)
    assert all(values[k] for k in SECRET_VARS)
    assert re.fullmatch(r"[0-9a-f]{48}", values["LONGTAIL_PG_PASSWORD"])  # URL-safe
    Fernet(values["LONGTAIL_FERNET_KEY"].encode())
    again = subprocess.run(["sh", str(DOCKER / "gen-env.sh"), str(out)], capture_output=True)
    assert again.returncode == 1  # never overwritten


def test_the_scheduler_driver_is_not_forced_onto_loopback(tmp_path: Path) -> None:
    from longtail.spark_launch import submit_settings

    pair = make_pair(tmp_path, {})
    env = environment(pair.compose["scheduler"])
    master = json.loads(env["AIRFLOW_CONN_LONGTAIL_SPARK"])
    url = f"{master['host']}:{master['port']}"
    driver_env, _, _ = submit_settings(url, {"SPARK_LOCAL_IP": LOOPBACK}, env)
    assert driver_env["SPARK_LOCAL_IP"] == "scheduler"


def test_entrypoint_writes_the_password_file_and_drops_the_password(tmp_path: Path) -> None:
    target = tmp_path / "home" / ".config" / "longtail" / secretstore.PASSWORDS_FILE
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "LONGTAIL_ADMIN_PASSWORD": "s3cret",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(target),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
    }
    probe = 'echo "${LONGTAIL_ADMIN_PASSWORD:-unset}"'
    done = subprocess.run(
        ["sh", str(DOCKER / "entrypoint.sh"), "sh", "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "unset"
    assert json.loads(target.read_text()) == {"admin": "s3cret"}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert Path(PASSWORDS_FILE).name == secretstore.PASSWORDS_FILE


def test_healthcheck_script_runs_the_topology_probes() -> None:
    spec = importlib.util.spec_from_file_location("compose_healthcheck", DOCKER / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["http", "http://127.0.0.1:9/none"]) == 1  # nothing listens there
    assert module.main(["dag_parsed", "x"]) == 1  # needs a token: not a container check
    used = {
        svc["healthcheck"]["test"][3]
        for svc in raw_compose()["services"].values()
        if svc.get("healthcheck", {}).get("test", [None])[1:3] == HEALTHCHECK
    }
    assert used and used <= set(module.KINDS)


def _dockerfile() -> tuple[str, dict[str, str]]:
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    env: dict[str, str] = {}
    for line in joined.splitlines():
        if line.startswith("ENV "):
            env.update(word.split("=", 1) for word in shlex.split(line[4:]))
    return joined, env


def test_image_and_build_context(tmp_path: Path) -> None:
    text, env = _dockerfile()
    assert text.startswith("FROM python:3.11-slim-bookworm")
    assert "openjdk-17-jre-headless" in text
    assert "pip install --no-cache-dir -r requirements.lock" in text
    assert "pip install --no-cache-dir --no-deps --no-build-isolation ." in text
    assert " -e " not in text  # not editable: the package lives in site-packages
    assert "python -m longtail.jvm_archive" in text  # the driver JVM's class archive
    # `make -s env`'s settings, except PATH (the image's python) and SPARK_LOCAL_IP (compose sets
    # each container's own)
    for key, value in make_env(tmp_path).items():
        if key in ("PATH", "SPARK_LOCAL_IP"):
            continue
        assert key in env, key
        if not key.startswith("PYSPARK_"):
            assert env[key] == value, key
    assert env["AIRFLOW_HOME"] == AIRFLOW_HOME
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == f"{APP}/dags"
    assert (DOCKER / "postgres-init").is_dir()
    # the build context is the repo root: no local state, data or secrets in it
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (".venv", "data", ".runtime", ".airflow", ".git", "docker/.env", "bench"):
        assert any(fnmatch.fnmatch(path, p) for p in patterns), path
    for path in ("src", "dags", "jobs", "sql", "docker", "pyproject.toml", "requirements.lock"):
        assert not any(fnmatch.fnmatch(path, p) for p in patterns), path
    assert not [p for p in patterns if p.startswith("!")]
