"""The DAG's operator: a stage's permanent failure fails the task at once; others are retried.

Runs the real spark-submit on a two-line application that exits with a given status.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from longtail.errors import PERMANENT_EXIT_CODE
from longtail.operators import StageSubmitOperator, exit_code_of
from longtail.spark_launch import is_loopback_master, submit_settings


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


@pytest.mark.parametrize(
    ("master", "loopback"),
    [
        ("local[2]", True),
        ("spark://127.0.0.1:7077", True),
        ("spark://localhost:7077", True),
        ("spark://spark-master:7077", False),
        ("spark://10.0.0.5:7077", False),
        ("yarn", False),
    ],
)
def test_driver_binds_to_loopback_only_for_a_local_master(master: str, loopback: bool) -> None:
    env, conf, archives = submit_settings(master, {"PYSPARK_PYTHON": "/venv/python"}, {})
    assert is_loopback_master(master) is loopback
    assert ("SPARK_LOCAL_IP" in env) is loopback
    if loopback:
        assert env["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert env["PYSPARK_PYTHON"] == "/venv/python"
    assert conf["spark.executorEnv.HF_HUB_OFFLINE"] == "1"
    assert archives is None


def test_remote_master_keeps_an_explicit_routable_driver_address() -> None:
    env, _, _ = submit_settings("spark://spark-master:7077", {}, {"SPARK_LOCAL_IP": "10.1.2.3"})
    assert env["SPARK_LOCAL_IP"] == "10.1.2.3"
    loopback = {"SPARK_LOCAL_IP": "127.0.0.1"}
    env, _, _ = submit_settings("spark://spark-master:7077", loopback, loopback)
    assert "SPARK_LOCAL_IP" not in env


def test_packed_environment_is_shipped_to_executors() -> None:
    env, conf, archives = submit_settings(
        "spark://spark-master:7077",
        {"PYSPARK_PYTHON": "/venv/python", "PYSPARK_DRIVER_PYTHON": "/venv/python"},
        {"LONGTAIL_PYSPARK_ARCHIVE": "/shared/longtail-env.tar.gz"},
    )
    assert archives == "/shared/longtail-env.tar.gz#longtail-env"
    assert conf["spark.pyspark.python"] == "./longtail-env/bin/python"
    assert conf["spark.pyspark.driver.python"] == "/venv/python"
    assert "PYSPARK_PYTHON" not in env


def test_the_hook_gets_the_settings_of_its_connection(
    app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_LONGTAIL_REMOTE_SPARK",
        '{"conn_type": "spark", "host": "spark://spark-master", "port": 7077}',
    )
    op = StageSubmitOperator(
        task_id="remote",
        conn_id="longtail_remote_spark",
        application=str(app),
        env_vars={"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable},
        verbose=False,
    )
    hook = op._get_hook()
    cmd = hook._build_spark_submit_command(str(app))
    assert cmd[cmd.index("--master") + 1] == "spark://spark-master:7077"
    assert "spark.executorEnv.OPENBLAS_NUM_THREADS=1" in cmd
    assert "SPARK_LOCAL_IP" not in (hook._env or {})
    local = _operator(app, 0)._get_hook()
    local._build_spark_submit_command(str(app))
    assert local._env["SPARK_LOCAL_IP"] == "127.0.0.1"


def test_deployment_spark_conf_reaches_every_stage() -> None:
    opts = "-XX:TieredStopAtLevel=1"
    environ = {"LONGTAIL_SPARK_CONF": json.dumps({"spark.executor.extraJavaOptions": opts})}
    _, conf, _ = submit_settings("spark://m:7077", {}, environ)
    assert conf["spark.executor.extraJavaOptions"] == opts
    assert conf["spark.executorEnv.OPENBLAS_NUM_THREADS"] == "1"  # added to, not replaced
    for raw in ("[1]", "{not json", '{"executor.memory": "2g"}'):
        with pytest.raises(ValueError, match="LONGTAIL_SPARK_CONF"):
            submit_settings("spark://m:7077", {}, {"LONGTAIL_SPARK_CONF": raw})


def test_cores_per_stage_can_be_capped() -> None:
    _, conf, _ = submit_settings("spark://m:7077", {}, {"LONGTAIL_SPARK_CORES_MAX": "1"})
    assert conf["spark.cores.max"] == "1"
    _, conf, _ = submit_settings("spark://m:7077", {}, {})
    assert "spark.cores.max" not in conf
