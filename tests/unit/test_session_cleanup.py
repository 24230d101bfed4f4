"""The session server's cleanup between stages (longtail.session.server): the caller gets its
exit code before the cleanup, and the next stage starts only after it."""

from __future__ import annotations

import gc
import json
import threading
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from longtail import registry
from longtail.session.server import SessionServer

DS = date(2026, 1, 31)


class _Lines:
    """What the server writes to a task's log."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)

    def flush(self) -> None:
        pass


class _HeldCleanup(SessionServer):
    """The real server whose cleanup waits until the test lets it go, so the test can look at
    the moment between a stage's end and its cleanup."""

    def __init__(self, spark: Any) -> None:
        super().__init__(spark, "local[1]", idle_exit_s=0)
        self.go = threading.Event()
        self.cleaning = threading.Event()

    def _clean(self) -> None:
        self.cleaning.set()
        assert self.go.wait(60)
        super()._clean()


@pytest.fixture
def freezes(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The server's calls of gc.freeze, counted (the real one still runs). The frozen count
    itself is no witness: it falls whenever a frozen object is freed."""
    calls: list[int] = []
    real = gc.freeze

    def freeze() -> None:
        calls.append(1)
        real()

    monkeypatch.setattr(gc, "freeze", freeze)
    yield calls
    gc.unfreeze()  # the test worker keeps collecting what the server's freeze moved aside


def test_the_exit_code_comes_before_the_cleanup_and_the_next_stage_after_it(
    spark: Any, tmp_path: Path, freezes: list[int]
) -> None:
    server = _HeldCleanup(spark)
    cfg = registry.build_configs(DS, str(tmp_path / "wh"), names=("retention",))["retention"]
    args = ["--config-json", json.dumps(cfg.to_dict(), default=str)]
    spark.range(3).createOrReplaceTempView("left_by_a_stage")
    cached = spark.range(5).cache()
    cached.count()

    code = server.run("retention", args, {}, _Lines())  # type: ignore[arg-type]

    assert code == 0
    assert server.cleaning.wait(60)  # cleanup started, and holds the run lock meanwhile
    assert server.running is None and server.stages_run == 1
    assert not server.run_lock.acquire(blocking=False)
    # what the stage left is still there until the cleanup runs
    assert "left_by_a_stage" in {v.viewName for v in spark.sql("SHOW VIEWS").collect()}
    assert cached.storageLevel.useMemory
    assert not freezes
    server.go.set()
    assert server.run_lock.acquire(timeout=60)  # the next stage's turn comes after the cleanup
    server.run_lock.release()
    assert "left_by_a_stage" not in {v.viewName for v in spark.sql("SHOW VIEWS").collect()}
    assert not cached.storageLevel.useMemory
    assert server.frozen and len(freezes) == 1 and gc.get_freeze_count() > 0
    # a second stage runs on the same server, and the freeze happens once
    server.go.set()
    assert server.run("retention", args, {}, _Lines()) == 0  # type: ignore[arg-type]
    assert server.run_lock.acquire(timeout=60)
    server.run_lock.release()
    assert server.stages_run == 2 and len(freezes) == 1
