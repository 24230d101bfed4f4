"""The session server: one Spark driver that runs stages on request, one at a time.

`python -m longtail.session.server --master local[2] --state-dir DIR [--port 0] [--idle-exit-s N]`
starts Spark with the same settings as a spark-submit task (`spark_launch.submit_settings`), then
serves the protocol of `session.client` and writes DIR/server.json ({"url", "pid", "master"})
once it answers. Each stage runs exactly as under spark-submit: `registry.stage(name).main(args)`
with the task's environment (its run id) set for the stage's duration, its log (Python logging,
stdout and stderr) streamed to the task. Between stages Spark's cache is cleared, so one night's
DataFrames are never another's.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import io
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from longtail.session.client import EXIT_MARK, STATE_FILE

log = logging.getLogger("longtail.session")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Sink(io.TextIOBase):
    """A text stream that sends whole lines to the task; a gone task cancels the stage's jobs."""

    def __init__(self, out: Any, on_gone: Any) -> None:
        self._out, self._on_gone = out, on_gone
        self._buf = ""
        self._lock = threading.Lock()
        self.gone = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._buf += text
            if "\n" in self._buf:
                lines, self._buf = self._buf.rsplit("\n", 1)
                self._send(lines + "\n")
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._buf:
                self._send(self._buf + "\n")
                self._buf = ""

    def _send(self, text: str) -> None:
        if self.gone:
            return
        try:
            self._out.write(text.replace(EXIT_MARK, "").encode("utf-8", errors="replace"))
            self._out.flush()
        except OSError:
            self.gone = True  # the task was killed or timed out: stop the stage's Spark work
            self._on_gone()


class _SinkHandler(logging.Handler):
    def __init__(self, sink: _Sink) -> None:
        super().__init__(logging.INFO)
        self.sink = sink
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _captured(sink: _Sink) -> Iterator[None]:
    """The stage's stdout, stderr and Python log go to `sink` (one stage runs at a time)."""
    handler = _SinkHandler(sink)
    root = logging.getLogger()
    old_out, old_err = sys.stdout, sys.stderr
    root.addHandler(handler)
    sys.stdout = sys.stderr = sink
    try:
        yield
    finally:
        sys.stdout, sys.stderr = old_out, old_err
        root.removeHandler(handler)
        sink.flush()


@contextlib.contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    """The task's environment (its run id, ...) for the stage's duration, then the server's."""
    before = {k: os.environ.get(k) for k in env}
    os.environ.update({str(k): str(v) for k, v in env.items()})
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class SessionServer:
    """One Spark session; `run` executes one stage at a time and reports its exit code.

    The server answers before its Spark session exists (`spark` None, health `starting`), so a
    caller can start it and go on with its own start-up (`make run` starts Airflow meanwhile);
    a stage that arrives then waits for the session (`ready`)."""

    def __init__(self, spark: Any, master: str, idle_exit_s: float) -> None:
        self.spark, self.master, self.idle_exit_s = spark, master, idle_exit_s
        self.run_lock = threading.Lock()
        self.running: str | None = None
        self.stages_run = 0
        self.last_active = time.monotonic()
        self.stopping = threading.Event()
        self.started = threading.Event()
        self.preloading: threading.Thread | None = None
        self.frozen = False
        if spark is not None:
            self.started.set()

    def ready(self, spark: Any) -> None:
        self.spark, self.last_active = spark, time.monotonic()
        self.started.set()

    def health(self) -> dict[str, Any]:
        return {
            "ok": self.started.is_set(),
            "starting": not self.started.is_set(),
            "pid": os.getpid(),
            "master": self.master,
            "stages_run": self.stages_run,
            "running": self.running,
        }

    def cancel(self) -> None:
        if self.running is not None and self.spark is not None:
            log.warning("cancelling the Spark jobs of %s", self.running)
            self.spark.sparkContext.cancelAllJobs()

    def run(self, stage: str, args: list[str], env: Mapping[str, str], sink: _Sink) -> int:
        from longtail import registry
        from longtail.errors import PERMANENT_EXIT_CODE

        if stage not in registry.BY_NAME:
            sink.write(f"unknown stage {stage!r}; stages: {', '.join(registry.NAMES)}\n")
            return PERMANENT_EXIT_CODE
        while not self.started.wait(1.0):  # the session is still starting
            if self.stopping.is_set():
                sink.write("the session server stopped before its Spark session started\n")
                return 1
        self.run_lock.acquire()
        self.running, self.last_active = stage, time.monotonic()
        started = time.time()
        try:
            with _captured(sink), _environ(env):
                try:
                    code = registry.stage(stage).load().main(args)
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
                except BaseException:
                    traceback.print_exc()
                    code = 1
            return int(code or 0)
        finally:
            self.stages_run += 1
            self.running, self.last_active = None, time.monotonic()
            log.info("%s %s done in %.1fs", stage, " ".join(args)[:200], time.time() - started)
            # The caller has its exit code at once; the cleanup keeps the run lock, so the next
            # stage (or the server's shutdown) starts only after it, while Airflow books this task
            # and starts the next one.
            threading.Thread(
                target=self._between_stages, name="session-cleanup", daemon=True
            ).start()

    def _between_stages(self) -> None:
        """Nothing of one stage stays for the next: cached tables, temporary views, garbage.
        Runs in its own thread and releases the run lock that `run` took."""
        try:
            self._clean()
        finally:
            self.run_lock.release()

    def _clean(self) -> None:
        with contextlib.suppress(Exception):
            self.spark.catalog.clearCache()
            # SHOW VIEWS rather than catalog.listTables(): Spark cannot decode listTables' rows
            # when expressions are interpreted (spark.sql.codegen.factoryMode=NO_CODEGEN).
            for view in self.spark.sql("SHOW VIEWS").collect():
                if view.isTemporary:
                    self.spark.catalog.dropTempView(view.viewName)
        gc.collect()
        if not self.frozen and not (self.preloading and self.preloading.is_alive()):
            # What survives a full collection once the modules are loaded (the modules, Spark's
            # and GX's caches) stays for the server's life: later collections skip it, 0.18 s a
            # stage otherwise (measured with the preloaded modules).
            gc.freeze()
            self.frozen = True

    def idle_too_long(self) -> bool:
        idle = time.monotonic() - self.last_active
        started = self.started.is_set()
        return started and self.running is None and self.idle_exit_s > 0 and idle > self.idle_exit_s


def _handler(server: SessionServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the body of /run ends when the stage does

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

        def _json(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._json(200, server.health())
            else:
                self._json(404, {"ok": False, "error": f"no such path {self.path}"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._json(400, {"ok": False, "error": "the body is not JSON"})
                return
            if self.path == "/cancel":
                server.cancel()
                self._json(200, {"ok": True})
            elif self.path == "/stop":
                server.stopping.set()
                self._json(200, {"ok": True})
            elif self.path == "/run":
                if server.stopping.is_set():
                    self._json(503, {"ok": False, "error": "the session server is stopping"})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.end_headers()
                sink = _Sink(self.wfile, server.cancel)
                code = server.run(
                    str(body.get("stage")),
                    [str(a) for a in body.get("args", [])],
                    {str(k): str(v) for k, v in (body.get("env") or {}).items()},
                    sink,
                )
                with contextlib.suppress(OSError):
                    self.wfile.write(f"{EXIT_MARK} {code}\n".encode())
            else:
                self._json(404, {"ok": False, "error": f"no such path {self.path}"})

    return Handler


def _write_state(folder: Path, state: dict[str, Any]) -> None:
    tmp = folder / f".{STATE_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(state))
    tmp.replace(folder / STATE_FILE)


def _remove_state(folder: Path) -> None:
    """Remove the state file if it is this process's."""
    state = folder / STATE_FILE
    with contextlib.suppress(OSError, ValueError):
        if json.loads(state.read_text()).get("pid") == os.getpid():
            state.unlink()


# Imported while the driver JVM starts, before the first stage: each costs a stage seconds the
# first time (Great Expectations about 2-4 s at the first gate, LightGBM and the tokenizer less).
PRELOAD = ("great_expectations", "lightgbm", "implicit", "transformers")


def preload_modules(names: tuple[str, ...] = PRELOAD) -> None:
    """Import the stages' heavy modules ahead of them (best effort: a stage imports what it
    needs anyway; Python's import lock makes a stage importing the same module wait for it)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a missing optional module is the stage's to report
            log.info("preloading %s failed: %s", name, exc)


def start_spark(master: str) -> Any:
    """The driver, started like a spark-submit task for `master` (bind address, executors' env)."""
    from longtail import runtime_env
    from longtail.spark_launch import submit_settings
    from longtail.sparkutil import get_spark

    env, conf, archives = submit_settings(master, {}, os.environ)
    os.environ.update(env)
    if "SPARK_LOCAL_IP" not in env:
        os.environ.pop("SPARK_LOCAL_IP", None)
    if archives:
        conf["spark.archives"] = archives
    os.environ["LONGTAIL_SPARK_MASTER"] = master
    runtime_env.apply()
    conf.setdefault("spark.executor.memory", runtime_env.executor_memory())
    return get_spark("longtail-session", extra=conf)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--master", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--idle-exit-s", type=float, default=900, help="0: never")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    logging.getLogger("py4j").setLevel(logging.WARNING)

    server = SessionServer(None, args.master, args.idle_exit_s)
    httpd = ThreadingHTTPServer((args.host, args.port), _handler(server))
    httpd.daemon_threads = True
    host, port = httpd.server_address[:2]
    url = f"http://{host}:{port}"
    signal.signal(signal.SIGTERM, lambda *_: server.stopping.set())
    threading.Thread(target=httpd.serve_forever, name="session-http", daemon=True).start()
    args.state_dir.mkdir(parents=True, exist_ok=True)
    _write_state(args.state_dir, {"url": url, "pid": os.getpid(), "master": args.master})
    log.info("session server for %s at %s (pid %d): starting Spark", args.master, url, os.getpid())
    import pyspark.sql  # noqa: F401  (before the preload thread: one thread imports Spark's modules)

    # The preload's imports run while the JVM starts (its own process), not beside the first stage.
    server.preloading = threading.Thread(
        target=preload_modules, name="session-preload", daemon=True
    )
    server.preloading.start()
    try:
        spark = start_spark(args.master)
    except BaseException:
        server.stopping.set()
        _remove_state(args.state_dir)
        raise
    server.ready(spark)
    log.info("Spark session ready for %s", args.master)
    try:
        while not server.stopping.wait(1.0):
            if server.idle_too_long():
                log.info("idle for %.0f s: exiting", server.idle_exit_s)
                break
    finally:
        server.stopping.set()
        with server.run_lock:  # a running stage finishes first
            httpd.shutdown()
        _remove_state(args.state_dir)
        # the JVM may be gone already (a SIGTERM to the process group reaches it too)
        with contextlib.suppress(Exception):
            spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
