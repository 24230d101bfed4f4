"""Fixtures every test folder shares, and the long variants.

`spark`: the one local Spark session of a test run (unit, bench and reliability tests alike),
started only for tests that request it (directly or through another fixture), so pure-Python
tests never pay for a JVM. `tmp_landing`: a tiny landing folder writer.

Long variants: tests marked `long`, and the longer paths of some others, run only when asked.
`LONGTAIL_LONG_TESTS=1 make test` (or `pytest --long`) runs them; `make test` alone stays within
its time budget on two cores.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

# Before numpy is imported by any test module, as `make test` does: implicit's ALS is slow (and
# warns) with a threaded BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

LONG_ENV = "LONGTAIL_LONG_TESTS"

# A pytest-xdist worker's __main__ has neither __spec__ nor __file__, which pyspark.sql.connect
# (imported by Great Expectations) takes for a doctest run: without Spark Connect's optional
# packages it then exits the process with status 0.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "pytest-xdist-worker"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        default=os.environ.get(LONG_ENV, "").lower() in ("1", "true", "yes"),
        help=f"run the long variants too (default from {LONG_ENV})",
    )


TESTS = Path(__file__).resolve().parent
# Folders whose files share one costly session fixture that cannot be built twice at once: the
# deployment's files share one deployment (its services and ports).
SHARED_UNITS = {"deployment": "deployment"}


def work_unit(path: Path) -> str:
    """The unit of work a parallel run (`make test`: `pytest -n 2 --dist loadgroup`) gives one
    worker: a test file, so its module fixtures are built once, or a folder in SHARED_UNITS."""
    relative = path.resolve().relative_to(TESTS)
    return SHARED_UNITS.get(relative.parts[0], relative.as_posix())


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(work_unit(Path(str(item.fspath)))))
    if config.getoption("long"):
        return
    skip = pytest.mark.skip(reason=f"long variant: {LONG_ENV}=1 make test")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def long_tests(pytestconfig: pytest.Config) -> bool:
    """Whether the long variants run: fixtures and tests with a short and a long path ask this."""
    return bool(pytestconfig.getoption("long"))


# Expressions interpreted, not compiled to Java: on test-sized inputs compiling the generated code
# costs more than running it (the two standard test nights: 46 + 33 s compiled, 42 + 28 s
# interpreted, the same published bytes). Spark's own test suites run both modes. The production
# (compiled) path is still what the deployment tests (their own LONGTAIL_SPARK_CONF in make test)
# and the one-core night of test_schedule_independence run; that test compares its tables with
# the reference nights built in this session.
INTERPRETED = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}
# The session servers and `make run`s the tests start read their stages' Spark settings from
# LONGTAIL_SPARK_CONF (spark_launch.submit_settings): the same, unless the caller set its own.
# run_nights.py (the one-core night) does not read it, so one end-to-end night still compiles.
os.environ.setdefault("LONGTAIL_SPARK_CONF", json.dumps(INTERPRETED))


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    from longtail.sparkutil import get_spark

    # No adaptive re-planning: tiny inputs, and AQE's extra planning roughly triples the time of
    # each first-run query (results are the same either way). Shuffle partitions: see below.
    session = get_spark(
        "longtail-tests",
        extra={
            **INTERPRETED,
            "spark.sql.shuffle.partitions": "2",
            "spark.sql.adaptive.enabled": "false",
        },
    )
    yield session
    session.stop()


# The reliability tests compare nights on two shuffle partitions (one per core of local[2]) with
# others on 8 and on 1 (test_schedule_independence.py); every other test runs on one, the
# fastest for their tiny inputs.
RELIABILITY = TESTS / "reliability"


@pytest.fixture(autouse=True)
def _shuffle_partitions(request: pytest.FixtureRequest) -> None:
    if "spark" not in request.fixturenames:
        return
    reliability = Path(str(request.node.fspath)).is_relative_to(RELIABILITY)
    request.getfixturevalue("spark").conf.set(
        "spark.sql.shuffle.partitions", "2" if reliability else "1"
    )


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if any(ch in text for ch in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_text(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = [",".join(columns)]
    lines += [",".join(_csv_cell(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def _write(
    path: Path,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    raw: str | None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name.lower()
    if raw is not None:
        data = raw.encode("utf-8")
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    elif name.endswith(".csv"):
        path.write_text(_csv_text(columns, rows), encoding="utf-8")
    elif name.endswith(".csv.gz"):
        path.write_bytes(gzip.compress(_csv_text(columns, rows).encode("utf-8")))
    elif name.endswith((".jsonl", ".ndjson", ".json")):
        lines = [json.dumps(dict(zip(columns, row, strict=True))) for row in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({c: [row[i] for row in rows] for i, c in enumerate(columns)})
        pq.write_table(table, path)
    else:
        raise ValueError(f"tmp_landing cannot write {path.name}; pass raw= for odd files")


LandingWriter = Callable[..., Path]


@pytest.fixture
def tmp_landing(tmp_path: Path) -> LandingWriter:
    """write(rel_path, columns, rows, raw=None) -> landing root.

    rel_path is relative to the landing root, e.g. "events/dt=2024-05-01/part.csv"; the format
    follows the extension (csv, csv.gz, jsonl, parquet). `raw` writes the given text verbatim
    (gzip-compressed for .gz names) for malformed-file cases.
    """
    root = tmp_path / "landing"
    root.mkdir()

    def write(
        rel_path: str,
        columns: Sequence[str] = (),
        rows: Sequence[Sequence[Any]] = (),
        raw: str | None = None,
    ) -> Path:
        _write(root / rel_path, columns, rows, raw)
        return root

    return write
