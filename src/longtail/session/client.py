"""Talk to a session server, and start one when none runs (stdlib only: the operator imports it).

The wire protocol is plain HTTP on the loopback address (or wherever the server listens):
- `GET /health`: JSON {"ok", "starting", "pid", "master", "stages_run", "running"}; `starting`
  (and not `ok`) while the server's Spark session starts;
- `POST /run` with JSON {"stage", "args", "env"}: the stage's log as text lines, then one last
  line `EXIT_MARK <code>`; a response without that line means the server died mid-stage;
- `POST /cancel`: cancel the running stage's Spark jobs (the task was killed);
- `POST /stop`: finish the running stage, then exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

# The Spark connection's extra that sends a DAG's tasks to a session server (its URL).
SESSION_EXTRA = "session"
EXIT_MARK = "\x00longtail-exit"
STATE_FILE = "server.json"
START_TIMEOUT_S = 180.0
DEFAULT_IDLE_EXIT_S = 900


class SessionUnavailable(RuntimeError):
    """No answer from the session server, or it died while running a stage (retryable)."""


def _request(url: str, path: str, payload: Any = None, timeout: float | None = 10.0) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(
        url.rstrip("/") + path,
        data=data,
        method="GET" if payload is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    return urllib.request.urlopen(req, timeout=timeout)


def status(url: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """The server's answer to /health (`ok`, or `starting` while its Spark session starts), or
    None when nothing answers at `url`."""
    try:
        with _request(url, "/health", timeout=timeout) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def health(url: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """The server's health answer, or None when nothing healthy answers at `url`."""
    body = status(url, timeout)
    return body if body is not None and body.get("ok") else None


def wait_until_up(url: str, timeout_s: float = START_TIMEOUT_S) -> dict[str, Any] | None:
    """The health answer once the server at `url` is up; while it says it is starting, wait (up
    to timeout_s). None at once when nothing answers: a dead server is not waited for."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = status(url)
        if body is None or body.get("ok"):
            return body
        if not body.get("starting") or time.monotonic() > deadline:
            return None
        time.sleep(0.5)


def run_stage(
    url: str,
    stage: str,
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] = print,
) -> int:
    """Run `stage` with `args` on the server; its log lines go to `on_line`; its exit code back.

    Raises SessionUnavailable when the server cannot be reached or the stream ends without an
    exit code (the server died): the task's retry then runs the stage again.
    """
    payload = {"stage": stage, "args": list(args), "env": dict(env or {})}
    try:
        resp = _request(url, "/run", payload, timeout=None)
    except (OSError, urllib.error.URLError) as exc:
        raise SessionUnavailable(f"no session server at {url}: {exc}") from exc
    with resp:
        for raw in resp:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            if line.startswith(EXIT_MARK):
                return int(line[len(EXIT_MARK) :].strip())
            on_line(line)
    raise SessionUnavailable(f"the session server at {url} ended {stage} without an exit code")


def cancel(url: str) -> None:
    """Ask the server to cancel the running stage's Spark jobs (best effort)."""
    with contextlib.suppress(OSError):
        _request(url, "/cancel", {}).close()


def stop(url: str) -> bool:
    """Ask the server to exit once its running stage is done; False when none answered."""
    try:
        _request(url, "/stop", {}).close()
    except OSError:
        return False
    return True


def read_state(folder: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and "url" in state else None


def ensure_server(
    folder: Path,
    master: str,
    idle_exit_s: int = DEFAULT_IDLE_EXIT_S,
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    wait: bool = True,
) -> str:
    """The URL of a healthy server for `master` whose state lives in `folder`; start one if none.

    A server found there for another master is stopped first (a session's master is fixed when
    its JVM starts). The new server writes its log to `folder`/server.log and exits after
    `idle_exit_s` seconds without a stage. wait=False: return as soon as the new server answers,
    while its Spark session is still starting (stages sent meanwhile wait for it).
    """
    folder.mkdir(parents=True, exist_ok=True)
    state = read_state(folder)
    if state is not None:
        found = wait_until_up(state["url"])
        if found is not None and found.get("master") == master:
            return str(state["url"])
        if found is not None:
            stop(state["url"])
            _wait_gone(state["url"])
    (folder / STATE_FILE).unlink(missing_ok=True)
    cmd = [
        python or sys.executable,
        "-m",
        "longtail.session.server",
        "--master",
        master,
        "--state-dir",
        str(folder),
        "--idle-exit-s",
        str(idle_exit_s),
    ]
    log = (folder / "server.log").open("ab")
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(env if env is not None else os.environ),
        start_new_session=True,  # outlives the command that started it, until idle
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (folder / "server.log").read_text(errors="replace")[-3000:]
            raise SessionUnavailable(f"the session server exited with {proc.returncode}:\n{tail}")
        state = read_state(folder)
        if state is not None:
            body = status(state["url"])
            if body is not None and (body.get("ok") or not wait):
                return str(state["url"])
        time.sleep(0.2 if not wait else 0.5)
    proc.terminate()
    raise SessionUnavailable(f"the session server did not start in {START_TIMEOUT_S:.0f} s")


def stop_server(folder: Path, timeout_s: float = 60.0) -> bool:
    """Stop the server whose state lives in `folder`, if one runs; True when one was stopped."""
    state = read_state(folder)
    if state is None or not stop(state["url"]):
        return False
    _wait_gone(state["url"], timeout_s)
    return True


def _wait_gone(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and status(url, timeout=1.0) is not None:
        time.sleep(0.3)
