"""A local deployment of the pipeline from this repository's own files, on 127.0.0.1:
PostgreSQL (Airflow's metadata DB), Airflow 3 as separate processes (api-server, scheduler,
dag-processor, triggerer) and a Spark standalone master with one worker.

`make up` / `make status` / `make down`, or `python -m longtail.deploy up|status|down`. What runs
is declared once in `longtail.deploy.topology` (where: `settings`, the processes' environments:
`environment`); `longtail.deploy.client` talks to the REST API.
"""
