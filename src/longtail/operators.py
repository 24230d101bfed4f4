"""The DAG's Spark operator: spark-submit, with permanent failures failing fast.

Imported by the DAG file at parse time, so it imports Airflow and the Spark provider only.
"""

from __future__ import annotations

import re
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from longtail.assets import config_from_args, emit_published
from longtail.errors import PERMANENT_EXIT_CODE
from longtail.manifest import RUN_ID_ENV

_EXIT_CODE = re.compile(r"Error code is: (\d+)")


def exit_code_of(exc: BaseException, hook: Any = None) -> int | None:
    """spark-submit's exit status behind a SparkSubmitHook failure, when it can be told."""
    m = _EXIT_CODE.search(str(exc))
    if m:
        return int(m.group(1))
    proc = getattr(hook, "_submit_sp", None)
    code = getattr(proc, "returncode", None)
    return code if isinstance(code, int) else None


class StageSubmitOperator(SparkSubmitOperator):
    """SparkSubmitOperator that does not retry a stage which failed for a permanent reason.

    A stage exits with PERMANENT_EXIT_CODE when its failure depends only on inputs and config (a
    landing folder that breaks the contract, a failed quality gate). Retrying would give the same
    result minutes later, so the task fails at once; every other failure keeps the DAG's retries.
    spark-submit passes a Python driver's exit status through in client mode (the default here);
    where a cluster manager does not, such failures are retried like any other.

    A task with outlets (the published tables' assets) fills its asset events after the stage
    succeeded, from the stage's run record (longtail.assets.emit_published).
    """

    def execute(self, context: Any) -> None:
        try:
            super().execute(context)
        except AirflowException as exc:
            if isinstance(exc, AirflowFailException):
                raise
            if exit_code_of(exc, self._hook) == PERMANENT_EXIT_CODE:
                raise AirflowFailException(
                    f"{self.task_id} failed for a reason a retry cannot fix (exit code "
                    f"{PERMANENT_EXIT_CODE}); the stage logged its reason above"
                ) from exc
            raise
        if self.outlets:  # a publishing stage: its asset events, from its run record
            extras = emit_published(
                context["outlet_events"],
                self.outlets,
                self.task_id,
                config_from_args(self.application_args or []),
                (self.env_vars or {}).get(RUN_ID_ENV),
            )
            self.log.info("asset events: %s", extras)
