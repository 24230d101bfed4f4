"""The long-lived Spark session (longtail.session): a night through it equals the in-process
night, exit codes keep their meaning, a killed task's or a dead server's stage is not lost
silently, and an idle server exits.

Each stage goes over the wire exactly as the DAG's operator sends it: the stage name and
`--config-json` with the config that `resolve_run` builds.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from reliability_kit import (
    DS,
    NIGHTS,
    PIPELINE_OVERRIDES,
    TOP_N,
    assert_same_nights,
    copy_warehouse,
    read_json,
)

from longtail import registry
from longtail.dagargs import resolve
from longtail.errors import PERMANENT_EXIT_CODE
from longtail.manifest import RUN_ID_ENV
from longtail.operators import StageSubmitOperator
from longtail.session import client
from longtail.session.client import SessionUnavailable, ensure_server, run_stage, stop_server

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
MASTER = "local[2]"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("session")
    url = ensure_server(folder, MASTER, idle_exit_s=0)
    yield url
    assert stop_server(folder)
    assert client.read_state(folder) is None  # the server removed its state on the way out


def _configs(landing: Path, warehouse: Path, ds: date) -> dict[str, dict[str, Any]]:
    """Every stage's config as resolve_run hands it to the tasks (JSON, as in the DAG)."""
    params = {
        "ds": ds.isoformat(),
        "landing": str(landing),
        "warehouse": str(warehouse),
        "top_n": TOP_N,
        "overrides": PIPELINE_OVERRIDES,
    }
    return resolve(params, None)["configs"]


def _run(url: str, stage: str, cfg: dict[str, Any], env: dict[str, str] | None = None) -> tuple:
    lines: list[str] = []
    code = run_stage(url, stage, ["--config-json", json.dumps(cfg)], env or {}, lines.append)
    return code, lines


def test_a_night_through_the_session_equals_the_in_process_night(
    server: str, standard_landing: Path, reference_published: Path, tmp_path: Path
) -> None:
    """The later night, every stage through the server, on a copy of the reference holding only
    the earlier night: the same tables with the same content as the in-process reference
    (`quality` included: it scores the earlier night's list); each stage's run id is the one its
    task sent, and the stage's own log reaches the task."""
    wh = copy_warehouse(reference_published, tmp_path / "warehouse", drop=DS)
    configs = _configs(standard_landing, wh, DS)
    for stage in registry.NAMES:
        code, lines = _run(server, stage, configs[stage], {RUN_ID_ENV: "night-run"})
        assert code == 0, (stage, "\n".join(lines[-40:]))
        assert any(f"{stage} ds={DS} done in" in line for line in lines), lines[-10:]
    assert_same_nights(wh, reference_published)
    manifest = read_json(wh / "recommendations" / f"ds={DS}" / "_manifest.json")
    assert manifest["run_id"] == "night-run"
    health = client.health(server)
    assert health is not None and health["running"] is None
    assert health["stages_run"] >= len(registry.NAMES)
    # the run id was the stage's alone: a re-run sent without one does not inherit it
    code, lines = _run(server, "quality", configs["quality"])
    assert code == 0, lines[-20:]
    rerun = read_json(wh / "quality_metrics" / f"ds={DS}" / "_manifest.json")
    assert rerun["run_id"] not in ("night-run", ""), rerun["run_id"]


def test_failures_keep_their_exit_codes_and_the_server_keeps_serving(
    server: str, standard_landing: Path, tmp_path: Path
) -> None:
    code, lines = _run(server, "no_such_stage", {})
    assert code == PERMANENT_EXIT_CODE and "unknown stage 'no_such_stage'" in lines[0]
    # a config the stage refuses: permanent, with its reason in the log
    cfg = _configs(standard_landing, tmp_path / "wh", NIGHTS[0])["ingest"]
    code, lines = _run(server, "ingest", {**cfg, "landing": str(tmp_path / "missing")})
    assert code == PERMANENT_EXIT_CODE, lines[-20:]
    assert any(str(tmp_path / "missing") in line for line in lines), lines[-20:]
    # the same server still runs a good stage afterwards
    code, lines = _run(server, "ingest", cfg)
    assert code == 0, lines[-20:]


def test_the_operator_sends_its_stage_to_the_connections_session(
    server: str,
    standard_landing: Path,
    reference_published: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = {"conn_type": "spark", "host": MASTER, "extra": {"session": server}}
    monkeypatch.setenv("AIRFLOW_CONN_LONGTAIL_SESSION_TEST", json.dumps(conn))
    wh = copy_warehouse(reference_published, tmp_path / "warehouse")
    before = client.health(server)
    assert before is not None

    def operator(stage: str, cfg: dict[str, Any]) -> StageSubmitOperator:
        return StageSubmitOperator(
            task_id=stage,
            conn_id="longtail_session_test",
            application=str(REPO / registry.JOB),
            application_args=[stage, "--config-json", json.dumps(cfg)],
            env_vars={RUN_ID_ENV: "operator-test"},
            verbose=False,
        )

    record = wh / "_runs" / f"ds={DS}" / "retention.json"
    record.unlink()
    cfg = _configs(standard_landing, wh, DS)["retention"]
    operator("retention", cfg).execute({})
    assert read_json(record)["config"]["warehouse"] == str(wh)
    after = client.health(server)
    assert after is not None and after["stages_run"] == before["stages_run"] + 1
    with pytest.raises(AirflowFailException, match=f"exit code {PERMANENT_EXIT_CODE}"):
        operator("no_such_stage", cfg).execute({})
    # no server answers: the task brings its own driver (spark-submit) rather than fail
    record.unlink()
    conn["extra"] = {"session": "http://127.0.0.1:9"}
    monkeypatch.setenv("AIRFLOW_CONN_LONGTAIL_SESSION_TEST", json.dumps(conn))
    operator("retention", cfg).execute({})
    assert read_json(record)["config"]["warehouse"] == str(wh)
    final = client.health(server)
    assert final is not None and final["stages_run"] == after["stages_run"]  # neither ran there


def test_a_server_that_dies_mid_stage_fails_the_task_retryably(
    standard_landing: Path, tmp_path: Path
) -> None:
    """Also: a server started without waiting answers at once, says it is starting, and a stage
    sent meanwhile waits for the session, then runs."""
    folder = tmp_path / "session"
    url = ensure_server(folder, MASTER, idle_exit_s=0, wait=False)
    first = client.status(url)  # a JVM takes seconds to start, the answer a fraction of one
    assert first is not None and first["starting"] and not first["ok"], first
    assert client.health(url) is None  # not healthy yet, but not gone: the operator waits
    pid = client.read_state(folder)["pid"]  # type: ignore[index]
    cfg = _configs(standard_landing, tmp_path / "wh", NIGHTS[0])["ingest"]
    started = threading.Event()

    def on_line(line: str) -> None:
        if not started.is_set():
            started.set()
            os.kill(pid, signal.SIGKILL)

    with pytest.raises(SessionUnavailable, match="without an exit code"):
        run_stage(url, "ingest", ["--config-json", json.dumps(cfg)], {}, on_line)
    assert started.is_set()
    # the next call starts a fresh server in the dead one's place
    again = ensure_server(folder, MASTER, idle_exit_s=1)
    assert client.health(again) is not None
    # ... which exits by itself once idle, removing its state
    deadline = time.monotonic() + 60
    while client.health(again, timeout=1.0) is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert client.health(again, timeout=1.0) is None
    assert client.read_state(folder) is None
