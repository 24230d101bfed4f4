"""longtail.airflow_cli: what the real Airflow CLI prints and its exit status, without the
interpreter's teardown at exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import airflow


def _run(module: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIRFLOW_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_a_command_prints_what_airflow_prints_and_exits_0(tmp_path: Path) -> None:
    out = _run("longtail.airflow_cli", tmp_path, "version")
    assert out.returncode == 0, out.stderr[-2000:]
    # stdout is a pipe here, so block-buffered: nothing printed is lost by the fast exit
    assert out.stdout.strip().splitlines()[-1] == airflow.__version__


def test_a_failing_command_keeps_airflows_exit_status_and_message(tmp_path: Path) -> None:
    ours = _run("longtail.airflow_cli", tmp_path, "no-such-command")
    real = _run("airflow", tmp_path, "no-such-command")
    assert real.returncode == 2  # argparse's status for an unknown command
    assert ours.returncode == real.returncode
    assert "invalid choice: 'no-such-command'" in ours.stderr
