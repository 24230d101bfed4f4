"""Long variants: tests marked `long`, and the longer paths of some others, run only when asked.

`LONGTAIL_LONG_TESTS=1 make test` (or `pytest --long`) runs them; `make test` alone stays within
its time budget on two cores.
"""

from __future__ import annotations

import os

import pytest

LONG_ENV = "LONGTAIL_LONG_TESTS"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        default=os.environ.get(LONG_ENV, "").lower() in ("1", "true", "yes"),
        help=f"run the long variants too (default from {LONG_ENV})",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
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
