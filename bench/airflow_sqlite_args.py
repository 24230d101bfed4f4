"""SQLite connect arguments for the Airflow processes that the backfill bench and tests start.

Scheduler, dag-processor, api-server and the backfill CLI share one SQLite file; on two busy cores
the default 5-second busy timeout ends in "database is locked". Named by import path in
AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS(_ASYNC).
"""

CONNECT_ARGS = {"timeout": 120}
