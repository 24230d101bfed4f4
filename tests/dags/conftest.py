"""Fixtures for the DAG tests: parse dags/ once with Airflow's own DagBag, in an isolated home.

Nothing here starts Spark or touches a database: DagBag only imports the DAG files.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DAG_ID = "longtail_nightly"

# Airflow reads its home and config when first imported; `make test` sets AIRFLOW_HOME, a bare
# `pytest` run must not create ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="longtail-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def _clean_env() -> dict[str, str]:
    """The environment without LONGTAIL_* settings, so the DAG shows its built-in defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LONGTAIL_")}


@pytest.fixture(scope="session")
def dagbag() -> Iterator[Any]:
    from airflow.dag_processing.dagbag import DagBag

    kwargs: dict[str, Any] = {"dag_folder": str(DAGS)}
    if "include_examples" in inspect.signature(DagBag.__init__).parameters:
        kwargs["include_examples"] = False  # Airflow 3.3 dropped it: examples follow the config
    with mock.patch.dict(os.environ, _clean_env(), clear=True):
        bag = DagBag(**kwargs)
    yield bag


@pytest.fixture(scope="session")
def dag(dagbag: Any) -> Any:
    assert DAG_ID in dagbag.dags, f"{DAG_ID} not found; import errors: {dagbag.import_errors}"
    return dagbag.dags[DAG_ID]
