"""The DAG's operator: a stage's permanent failure fails the task at once; others are retried.

Runs the real spark-submit on a two-line application that exits with a given status.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from longtail.errors import PERMANENT_EXIT_CODE
from longtail.operators import StageSubmitOperator, exit_code_of


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(
        "AIRFLOW_CONN_LONGTAIL_TEST_SPARK", '{"conn_type": "spark", "host": "local[1]"}'
    )
    bin_dir = str(Path(sys.executable).parent)  # spark-submit comes with pyspark
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ.get("PATH", ""))
    path = tmp_path / "exit_with.py"
    path.write_text("import sys\nsys.exit(int(sys.argv[1]))\n")
    return path


def _operator(app: Path, code: int) -> StageSubmitOperator:
    return StageSubmitOperator(
        task_id=f"exit_{code}",
        conn_id="longtail_test_spark",
        application=str(app),
        application_args=[str(code)],
        verbose=False,
    )


def test_permanent_exit_code_fails_without_retry(app: Path) -> None:
    with pytest.raises(AirflowFailException, match=f"exit code {PERMANENT_EXIT_CODE}"):
        _operator(app, PERMANENT_EXIT_CODE).execute({})


def test_other_failures_keep_their_retries(app: Path) -> None:
    with pytest.raises(AirflowException) as info:
        _operator(app, 1).execute({})
    assert not isinstance(info.value, AirflowFailException)
    assert exit_code_of(info.value) == 1


def test_success_passes_through(app: Path) -> None:
    _operator(app, 0).execute({})


def test_exit_code_is_read_from_the_hook_message() -> None:
    assert (
        exit_code_of(AirflowException("Cannot execute: spark-submit x. Error code is: 65.")) == 65
    )
    assert exit_code_of(AirflowException("something else")) is None
