"""The DAG's Spark operator: spark-submit (or the session server), permanent failures failing fast.

Imported by the DAG file at parse time, so it imports Airflow and the Spark provider only.
"""

from __future__ import annotations

import os
import re
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from longtail.assets import config_from_args, emit_published
from longtail.errors import PERMANENT_EXIT_CODE
from longtail.manifest import RUN_ID_ENV
from longtail.session import client as session_client
from longtail.spark_launch import submit_settings

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

    When the Spark connection's extra names a session server (`{"session": "http://..."}`), the
    stage runs there instead of in a new spark-submit driver (`longtail.session`): same stage
    code, same exit codes, its log streamed into the task's.
    """

    def session_url(self) -> str | None:
        """The session server this task's connection points at, or None (spark-submit)."""
        url = BaseHook.get_connection(self._conn_id).extra_dejson.get(session_client.SESSION_EXTRA)
        return str(url) if url else None

    def _get_hook(self) -> Any:
        hook = super()._get_hook()
        env, conf, archives = submit_settings(
            hook._connection["master"], self.env_vars or {}, os.environ
        )
        # Where the driver binds depends on the connection, known only now (not at parse time).
        hook._env_vars = env
        hook._conf = {**conf, **(hook._conf or {})}
        if archives:
            hook._archives = ",".join(a for a in (hook._archives, archives) if a)
        return hook

    def _run_in_session(self, url: str) -> None:
        stage, *args = [str(a) for a in self.application_args or []]
        # The driver's own settings (its Python, bind address) are the server's; the rest (the
        # run id) is the stage's environment while it runs.
        env = {k: v for k, v in (self.env_vars or {}).items() if not k.startswith("PYSPARK_")}
        self.log.info("running %s in the Spark session at %s", stage, url)
        try:
            code = session_client.run_stage(url, stage, args, env, self.log.info)
        except session_client.SessionUnavailable as exc:
            raise AirflowException(str(exc)) from exc
        if code == PERMANENT_EXIT_CODE:
            raise AirflowFailException(
                f"{self.task_id} failed for a reason a retry cannot fix (exit code "
                f"{PERMANENT_EXIT_CODE}); the stage logged its reason above"
            )
        if code != 0:
            raise AirflowException(f"{self.task_id} exited with {code} in the Spark session")

    def on_kill(self) -> None:
        url = self.session_url()
        if url:
            session_client.cancel(url)
        else:
            super().on_kill()

    def execute(self, context: Any) -> None:
        url = self.session_url()
        if url and session_client.wait_until_up(url) is None:
            # a dead server must not stop the night: this task brings its own driver
            self.log.warning("no session server answers at %s: spark-submit instead", url)
            url = None
        try:
            if url:
                self._run_in_session(url)
            else:
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
