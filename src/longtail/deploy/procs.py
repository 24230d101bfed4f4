"""Processes of the deployment: started in their own session, recorded in pid files with their
start time (a recycled pid is never taken for ours), stopped by process group."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

# psutil's create_time is rounded to clock ticks; the same process always gives the same value
CREATE_TIME_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class PidRecord:
    name: str
    pid: int
    create_time: float  # psutil.Process(pid).create_time(): seconds since the epoch
    argv: tuple[str, ...] = ()
    log: str = ""

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "argv": list(self.argv)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PidRecord:
        data = json.loads(text)
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            create_time=float(data["create_time"]),
            argv=tuple(data.get("argv", ())),
            log=str(data.get("log", "")),
        )


def write_pid(path: Path, record: PidRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(record.to_json())
    os.replace(tmp, path)


def read_pid(path: Path) -> PidRecord | None:
    try:
        return PidRecord.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return None  # a torn or foreign file: not a record of ours


def process_of(record: PidRecord | None) -> psutil.Process | None:
    """The live process the record names, or None: gone, a zombie, or a recycled pid (another
    process with the same pid but a different start time)."""
    if record is None:
        return None
    try:
        proc = psutil.Process(record.pid)
        if abs(proc.create_time() - record.create_time) > CREATE_TIME_TOLERANCE_S:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def spawn(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    log: Path,
    cwd: Path | None = None,
) -> tuple[subprocess.Popen[bytes], PidRecord]:
    """Start argv in its own session (own process group), stdout and stderr appended to log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start {name}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=str(cwd) if cwd else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        created = psutil.Process(proc.pid).create_time()
    except psutil.NoSuchProcess:  # died at once: record it anyway, it will read as dead
        created = time.time()
    return proc, PidRecord(name, proc.pid, created, tuple(argv), str(log))


def family(proc: psutil.Process) -> list[psutil.Process]:
    """proc and every descendant (task runners, LocalExecutor workers, Spark executors)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        return [proc, *proc.children(recursive=True)]
    return []


def signal_group(record: PidRecord, sig: int) -> None:
    """Signal the record's process group; only a group it leads (we started it with its own
    session, so pgid == pid), and only while the pid is still ours."""
    if process_of(record) is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(record.pid) == record.pid:
            os.killpg(record.pid, sig)
        else:
            os.kill(record.pid, sig)


def terminate(
    records: Sequence[PidRecord], timeout_s: float
) -> tuple[list[psutil.Process], list[psutil.Process]]:
    """SIGTERM to each record's process group, wait up to timeout_s for the processes and all
    their descendants, then SIGKILL what is left (groups, and descendants that left them).
    Returns (every process that was signalled, the survivors after SIGKILL)."""
    procs = [p for p in (process_of(r) for r in records) if p is not None]
    members: dict[int, psutil.Process] = {}
    for proc in procs:
        for member in family(proc):
            members[member.pid] = member
    for record in records:
        signal_group(record, signal.SIGTERM)
    _, alive = psutil.wait_procs(list(members.values()), timeout=timeout_s)
    # descendants born during the wait
    for proc in procs:
        for member in family(proc):
            if member.pid not in members:
                members[member.pid] = member
                alive.append(member)
    if alive:
        for record in records:
            signal_group(record, signal.SIGKILL)
        for member in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        _, alive = psutil.wait_procs(alive, timeout=10)
    return list(members.values()), alive


def running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def mentioning(folder: Path) -> list[str]:
    """Processes (other than this one and its ancestors: a shell or make that has the folder in
    its environment) whose command line or environment names folder."""
    needle, found = str(folder), []
    me = psutil.Process()
    skip = {me.pid, *(p.pid for p in me.parents())}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid in skip:
            continue
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if needle in cmd or any(needle in v for v in proc.environ().values()):
                found.append(f"pid {proc.pid} ({cmd[:100]})")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def port_owner(host: str, port: int) -> str | None:
    """Who listens on host:port (a description), or None when nobody does."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        if sock.connect_ex((host, port)) != 0:
            return None
    with contextlib.suppress(psutil.AccessDenied, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            listens = conn.status == psutil.CONN_LISTEN and conn.laddr
            if listens and conn.laddr.port == port and conn.pid:
                with contextlib.suppress(psutil.NoSuchProcess):
                    cmd = " ".join(psutil.Process(conn.pid).cmdline())[:120]
                    return f"pid {conn.pid} ({cmd})"
                return f"pid {conn.pid}"
    return "an unknown process"
