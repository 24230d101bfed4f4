"""How many Spark jobs a stage, and each of its gates, runs: recorded with the stage's run.

On a small night most of a stage's time is Spark's fixed cost per job (scheduling, task launch,
a Python worker round trip), not data. The count says where that cost comes from and whether a
change removed jobs. Each stage runs in its own Spark job group (a thread-local property, so
stages of two nights on one session are counted apart); a gate runs in a group of its own,
named after the stage's, and is counted under the stage as well. Counts come from Spark's status
tracker, which keeps the last `spark.ui.retainedJobs` (1000) jobs: a count near that is a floor.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

GROUP = "spark.jobGroup.id"
DESCRIPTION = "spark.job.description"
# parent group -> {gate name: jobs}, filled by the gates while their stage runs
_GATES: dict[str, dict[str, int]] = {}


def _jobs(spark: Any, group: str) -> int:
    return len(spark.sparkContext.statusTracker().getJobIdsForGroup(group))


@contextmanager
def _in_group(spark: Any, group: str, description: str) -> Iterator[None]:
    sc = spark.sparkContext
    before = sc.getLocalProperty(GROUP), sc.getLocalProperty(DESCRIPTION)
    sc.setLocalProperty(GROUP, group)
    sc.setLocalProperty(DESCRIPTION, description)
    try:
        yield
    finally:
        sc.setLocalProperty(GROUP, before[0])
        sc.setLocalProperty(DESCRIPTION, before[1])


@contextmanager
def counted_stage(spark: Any, name: str, ds: object) -> Iterator[dict[str, Any]]:
    """Run the body in the stage's job group; the yielded dict holds {"total", "gates"} after."""
    group = f"longtail:{name}:{ds}:{uuid.uuid4().hex[:8]}"
    counts: dict[str, Any] = {}
    _GATES[group] = {}
    try:
        with _in_group(spark, group, f"longtail {name} ds={ds}"):
            yield counts
    finally:
        gates = _GATES.pop(group, {})
        counts["gates"] = dict(sorted(gates.items()))
        counts["total"] = _jobs(spark, group) + sum(gates.values())


@contextmanager
def counted_gate(spark: Any, name: str) -> Iterator[None]:
    """Run a gate in its own group under the current stage's (no stage: not counted)."""
    parent = spark.sparkContext.getLocalProperty(GROUP)
    if parent not in _GATES:
        yield
        return
    group = f"{parent}/gate:{name}:{uuid.uuid4().hex[:8]}"
    try:
        with _in_group(spark, group, f"gate {name}"):
            yield
    finally:
        _GATES[parent][name] = _GATES[parent].get(name, 0) + _jobs(spark, group)
