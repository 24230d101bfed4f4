"""Executes the topology: `up` starts what is not running and waits until every part answers,
`down` stops exactly what `up` started, `status` tells what runs where."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from longtail.deploy import procs
from longtail.deploy.client import AirflowClient
from longtail.deploy.environment import NOT_INHERITED, airflow_env
from longtail.deploy.health import probe
from longtail.deploy.procs import PidRecord
from longtail.deploy.secretstore import (
    FILE as SECRETS_FILE,
)
from longtail.deploy.secretstore import (
    Secrets,
    load,
    load_or_create,
    secrets_dir,
    write_passwords_file,
)
from longtail.deploy.settings import ADMIN_USER, Settings
from longtail.deploy.topology import Service, runas, services

POLL_S = 1.0
LOG_TAIL_LINES = 40
MAKE_VARS = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")


class DeployError(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"longtail deploy: {message}", flush=True)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"(no log at {path})"
    return "\n".join(f"    {line}" for line in text)


def make_env(repo: Path) -> dict[str, str]:
    """The variables `make -s env` prints (what `make run` uses): PATH with the venv's bin,
    PYSPARK_PYTHON, HF_HUB_OFFLINE, ... Falls back to the same set computed here when make
    is not available."""
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARS}
    parsed: dict[str, str] = {}
    if shutil.which("make") and (repo / "Makefile").exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                ["make", "-s", "--no-print-directory", "-C", str(repo), "env"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if done.returncode == 0:
                for line in done.stdout.splitlines():
                    if line.startswith("export "):
                        for word in shlex.split(line[len("export ") :]):
                            key, _, value = word.partition("=")
                            parsed[key] = value
    if "PATH" not in parsed:  # no make: the Makefile's values
        venv_bin = repo / ".venv" / "bin"
        python = str(venv_bin / "python")
        parsed = {
            "GX_ANALYTICS_ENABLED": "false",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": python,
            "PYSPARK_DRIVER_PYTHON": python,
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    return parsed


@dataclass(frozen=True)
class Deployment:
    settings: Settings
    secrets: Secrets
    secrets_dir: Path
    base_env: Mapping[str, str]
    services: tuple[Service, ...]

    @classmethod
    def load(
        cls, create_secrets: bool = False, require_secrets: bool = False, repo: Path | None = None
    ) -> Deployment:
        settings = Settings.from_env(repo=repo)
        folder = secrets_dir(settings.repo)
        if create_secrets:
            secrets = load_or_create(folder)
        elif require_secrets or (folder / SECRETS_FILE).exists():
            secrets = load(folder)
        else:  # nothing was ever deployed from here: placeholders, never stored
            secrets = Secrets.generate()
        base = make_env(settings.repo)
        return cls(settings, secrets, folder, base, services(settings, secrets, base, folder))

    def pid_file(self, name: str) -> Path:
        return self.settings.pids / f"{name}.pid"

    def record(self, name: str) -> PidRecord | None:
        return procs.read_pid(self.pid_file(name))

    def long_running(self) -> list[Service]:
        return [s for s in self.services if not s.oneshot]

    def process_env(self, svc: Service) -> dict[str, str]:
        env: dict[str, str] = {}
        if svc.inherit_env:
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(NOT_INHERITED) and k not in MAKE_VARS
            }
        env.update(svc.env)
        return env

    def airflow_env(self) -> dict[str, str]:
        return airflow_env(self.settings, self.secrets, self.base_env, self.secrets_dir)

    def client(self) -> AirflowClient:
        return AirflowClient(self.settings.api_url, ADMIN_USER, self.secrets.admin_password)


@contextlib.contextmanager
def exclusive(settings: Settings) -> Iterator[None]:
    """One `up` or `down` at a time per runtime folder."""
    import fcntl

    settings.runtime.mkdir(parents=True, exist_ok=True)
    with (settings.runtime / ".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeployError(
                f"another `up` or `down` is running on {settings.runtime}; wait for it"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------- up


def _prepare_dirs(dep: Deployment) -> None:
    s = dep.settings
    for folder in (
        s.runtime,
        s.logs,
        s.pids,
        s.airflow_home,
        s.spark_dir / "work",
        s.spark_dir / "logs",
        s.spark_dir / "pids",
        s.warehouse,
    ):
        folder.mkdir(parents=True, exist_ok=True)
    for svc in dep.services:
        for folder in svc.owned_dirs:
            folder.mkdir(parents=True, exist_ok=True)
            if svc.run_as:
                shutil.chown(folder, svc.run_as, svc.run_as)
            os.chmod(folder, 0o700)
        if svc.run_as and svc.owned_dirs:
            probe_dir = svc.owned_dirs[-1]
            done = subprocess.run(
                list(runas(svc.run_as, ["test", "-w", str(probe_dir)])), capture_output=True
            )
            if done.returncode != 0:
                raise DeployError(
                    f"{svc.name}: the OS user {svc.run_as!r} cannot write {probe_dir}: a parent "
                    f"folder is not traversable by it (e.g. `chmod o+x` on the parents of "
                    f"{dep.settings.repo}), or set LONGTAIL_DEPLOY_DIR to a reachable folder"
                )


def _ensure_landing(dep: Deployment) -> None:
    s = dep.settings
    if s.landing == s.sample_landing.resolve():
        if not (s.landing / "_SAMPLE_OK").exists():
            say(f"generating the sample landing {s.landing}")
            done = subprocess.run(
                [str(s.venv_bin / "python"), "-m", "longtail.sample", "--out", str(s.landing)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise DeployError(f"sample landing failed:\n{done.stdout[-1500:]}{done.stderr}")
    elif not s.landing.exists() and "://" not in str(s.landing):
        raise DeployError(f"LONGTAIL_LANDING={s.landing} does not exist")


def _deps_closure(by: Mapping[str, Service], names: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(by[name].depends_on)
    return seen


def _fail(svc: Service, why: str) -> DeployError:
    return DeployError(
        f"{svc.name} is not healthy: {why}\n  last lines of {svc.log}:\n{tail(svc.log)}\n"
        "What did start is still running: `make status`, `make down`."
    )


def up(dep: Deployment) -> int:
    t0 = time.time()
    by = {s.name: s for s in dep.services}
    order = [s.name for s in dep.services]
    write_passwords_file(dep.secrets_dir, ADMIN_USER, dep.secrets.admin_password)
    _ensure_landing(dep)
    _prepare_dirs(dep)

    running: dict[str, PidRecord] = {}
    for svc in dep.long_running():
        record = dep.record(svc.name)
        if procs.process_of(record) is not None:
            assert record is not None
            running[svc.name] = record
        elif record is not None:
            say(f"{svc.name} (pid {record.pid}) is not running any more: starting it again")
            dep.pid_file(svc.name).unlink(missing_ok=True)
    to_start = {s.name for s in dep.long_running()} - set(running)
    for name in sorted(to_start, key=order.index):
        for host, port in by[name].binds:
            owner = procs.port_owner(host, port)
            if owner:
                raise DeployError(
                    f"{name} needs {host}:{port}, which is in use by {owner}; stop it or set "
                    "another port (LONGTAIL_*_PORT, see longtail/deploy/settings.py)"
                )

    needed = _deps_closure(by, to_start)
    state: dict[str, str] = {}
    for name in order:
        svc = by[name]
        if name in running:
            state[name] = "waiting"  # already up: its health is checked all the same
        elif name in to_start or (
            svc.oneshot and name in needed and not (svc.creates and svc.creates.exists())
        ):
            state[name] = "pending"
        else:
            state[name] = "ready"
    popen: dict[str, subprocess.Popen[bytes]] = {}
    started: dict[str, float] = {n: r.create_time for n, r in running.items()}
    passed: dict[str, int] = dict.fromkeys(order, 0)
    detail: dict[str, str] = {}
    client = dep.client()

    while any(v != "ready" for v in state.values()):
        for name in order:
            svc = by[name]
            if state[name] != "pending" or any(state[d] != "ready" for d in svc.depends_on):
                continue
            proc, record = procs.spawn(name, svc.argv, dep.process_env(svc), svc.log, cwd=svc.cwd)
            procs.write_pid(dep.pid_file(name), record)
            popen[name], started[name] = proc, time.time()
            state[name] = "waiting"
            say(f"{name} started (pid {proc.pid}), log {svc.log}")
        for name in order:
            if state[name] != "waiting":
                continue
            svc = by[name]
            proc = popen.get(name)
            rc = proc.poll() if proc is not None else None
            if svc.oneshot:
                if rc is None:
                    pass
                elif rc == 0:
                    dep.pid_file(name).unlink(missing_ok=True)
                    state[name] = "ready"
                    say(f"{name} done in {time.time() - started[name]:.0f}s")
                    continue
                else:
                    dep.pid_file(name).unlink(missing_ok=True)
                    raise _fail(svc, f"`{' '.join(svc.argv[:4])} ...` exited with {rc}")
            elif rc is not None:
                raise _fail(svc, f"the process exited with {rc}")
            elif name in running and procs.process_of(running[name]) is None:
                raise _fail(svc, "the process is gone")
            else:
                while passed[name] < len(svc.health):
                    ok, seen = probe(svc.health[passed[name]], started[name], client)
                    detail[name] = seen
                    if not ok:
                        break
                    passed[name] += 1
                if passed[name] == len(svc.health):
                    state[name] = "ready"
                    if name in running:
                        say(f"{name} already running (pid {running[name].pid}), healthy")
                    else:
                        say(f"{name} healthy after {time.time() - started[name]:.0f}s")
                    continue
            if time.time() - started[name] > svc.start_timeout_s:
                raise _fail(
                    svc,
                    f"no answer after {svc.start_timeout_s:.0f}s; last check: "
                    f"{detail.get(name, 'still running')}",
                )
        if any(v != "ready" for v in state.values()):
            time.sleep(POLL_S)

    s = dep.settings
    say(f"up in {time.time() - t0:.0f}s")
    print(f"  Airflow UI   {s.api_url}  user: {ADMIN_USER}")
    print(
        f"  password     key admin_password in {dep.secrets_dir / SECRETS_FILE} "
        "(or `python -m longtail.deploy credentials`)"
    )
    print(f"  Spark master {s.spark_master_url}  UI {s.spark_master_ui}")
    print(f"  warehouse    {s.warehouse}\n  landing      {s.landing}")
    print("  DAGs start paused: unpause longtail_nightly or trigger it from the UI.")
    return 0


# -------------------------------------------------------------------------------------- down


def _pg_running(dep: Deployment, svc: Service) -> bool:
    pg_ctl = dep.settings.pg_bin / "pg_ctl"
    if not pg_ctl.exists() or not (dep.settings.pg_data / "PG_VERSION").exists():
        return False
    argv = runas(svc.run_as, [str(pg_ctl), "status", "-D", str(dep.settings.pg_data)])
    return subprocess.run(list(argv), capture_output=True).returncode == 0


def down(dep: Deployment) -> int:
    t0 = time.time()
    group: list[tuple[Service, PidRecord]] = []
    pg_like: list[tuple[Service, PidRecord | None]] = []
    for svc in reversed(dep.services):
        record = dep.record(svc.name)
        if svc.stop_argv:
            pg_like.append((svc, record))
            continue
        if record is None:
            continue
        if procs.process_of(record) is None:
            say(f"{svc.name}: not running (pid {record.pid} is gone or not ours)")
            dep.pid_file(svc.name).unlink(missing_ok=True)
            continue
        group.append((svc, record))

    survivors: list[psutil.Process] = []
    if group:
        say("stopping " + ", ".join(f"{svc.name} ({rec.pid})" for svc, rec in group))
        timeout = max(svc.stop_timeout_s for svc, _ in group)
        signalled, alive = procs.terminate([rec for _, rec in group], timeout)
        survivors += alive
        for svc, _ in group:
            dep.pid_file(svc.name).unlink(missing_ok=True)
        say(f"stopped {len(group)} services ({len(signalled)} processes)")

    # servers with their own stop command (postgres: pg_ctl stop -m fast), after their clients
    stopped = len(group)
    for svc, record in pg_like:
        proc = procs.process_of(record)
        if proc is None and not _pg_running(dep, svc):
            dep.pid_file(svc.name).unlink(missing_ok=True)
            continue
        # the server's own children (postgres backends) run in sessions of their own
        members = procs.family(proc) if proc is not None else []
        say(f"stopping {svc.name}: {' '.join(svc.stop_argv)}")
        done = subprocess.run(
            list(svc.stop_argv), capture_output=True, text=True, timeout=svc.stop_timeout_s + 30
        )
        if done.returncode != 0:
            say(f"{svc.name}: stop command exited {done.returncode}: {done.stderr.strip()[-300:]}")
        _, alive = psutil.wait_procs(members, timeout=svc.stop_timeout_s)
        if alive and record is not None:
            _, alive = procs.terminate([record], 10)
        for member in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        survivors += alive
        stopped += 1
        dep.pid_file(svc.name).unlink(missing_ok=True)

    survivors = [p for p in survivors if procs.running(p)]
    for proc in survivors:
        say(f"WARNING: pid {proc.pid} survived SIGKILL")
    busy = [
        f"{host}:{port}"
        for svc in dep.long_running()
        for host, port in svc.binds
        if procs.port_owner(host, port)
    ]
    if busy:
        say("WARNING: still listening after down: " + ", ".join(busy))
    strays = procs.mentioning(dep.settings.runtime)
    if strays:
        say("WARNING: other processes still use the runtime folder: " + "; ".join(strays))
    if not stopped:
        say("nothing was running")
    say(f"down in {time.time() - t0:.0f}s")
    return 1 if survivors else 0


# ------------------------------------------------------------------------------------ status


def status_rows(dep: Deployment) -> list[dict[str, object]]:
    rows = []
    for svc in dep.long_running():
        record = dep.record(svc.name)
        proc = procs.process_of(record)
        state = "alive" if proc else ("dead" if record else "stopped")
        rows.append(
            {
                "service": svc.name,
                "pid": record.pid if record else None,
                "state": state,
                "url": svc.url or "",
                "log": str(svc.log),
            }
        )
    return rows


def status(dep: Deployment, out=None) -> list[dict[str, object]]:
    out = out or sys.stdout
    rows = status_rows(dep)
    print(f"{'service':<24}{'pid':>8}  {'state':<8}url", file=out)
    for row in rows:
        pid = row["pid"] if row["pid"] is not None else "-"
        print(f"{row['service']:<24}{pid!s:>8}  {row['state']!s:<8}{row['url']}", file=out)
    alive = sum(1 for r in rows if r["state"] == "alive")
    print(
        f"{alive}/{len(rows)} alive; UI {dep.settings.api_url} (user {ADMIN_USER}, password: "
        f"`python -m longtail.deploy credentials`); logs {dep.settings.logs}",
        file=out,
    )
    return rows


def export_lines(env: Mapping[str, str]) -> str:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2))
