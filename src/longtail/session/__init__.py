"""A long-lived Spark session that runs the stages of many nights: one JVM, not one per task.

Each stage stays its own Airflow task (own retries, logs, run record and gate); the task is a thin
client (`client.run_stage`) that asks the session server (`server`) to run
`registry.stage(name).main(args)` and streams its log back. Starting a Spark driver (JVM, Python
gateway, the encoder's and the libraries' imports) costs 10-20 s per task; a night has a dozen
tasks, so on a small shop that start-up, not the data, was most of the night.

Why a server of our own rather than Spark Connect: every stage uses the classic PySpark API that
Connect lacks or changes (job groups and the status tracker for the job counts, Great
Expectations' Spark datasource on live DataFrames, `mapInPandas` with driver-side models), and
the server keeps the exact code path of a spark-submit run, so both paths publish identical bytes.

A server runs one stage at a time (the stages of a night mostly depend on each other, and on two
cores two stages in one JVM would only share them); it clears Spark's cache between stages and
exits after an idle period. `client.ensure_server` starts one on demand (`make run`, the tests);
`make up` runs one beside its Spark cluster. Which path a task takes is the Spark connection's
`session` extra (the server's URL): set, the task goes through the server; absent, spark-submit.
"""
