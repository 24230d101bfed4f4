"""Errors a retry cannot fix, and how a stage reports them to the scheduler.

A bad landing folder or a failed data-quality gate gives the same outcome on every attempt, so
retrying it only delays the alert (by the retry delays: minutes). A stage that fails with a
PermanentError exits with PERMANENT_EXIT_CODE; the DAG's operator turns that code into an
immediate task failure without retries. Anything else (a lost executor, a full disk, a lock held
by another run) keeps Airflow's normal retries.
"""

from __future__ import annotations

# EX_DATAERR from sysexits.h: "the input data was incorrect in some way".
PERMANENT_EXIT_CODE = 65
# Prefix of the one line a failed stage prints last, so wrappers can show the reason alone.
ERROR_PREFIX = "LONGTAIL-ERROR"


class PermanentError(Exception):
    """Base for failures that depend only on the inputs and config: do not retry."""
