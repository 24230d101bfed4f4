"""The warehouse: where things live and how they are written, one module per concern.

- `layout`: every path (tables, staging attempts, run and gate records, locks, leases, the
  publish journal); stdlib only, so the Airflow side uses it without Spark.
- `files`: the small files (run records, manifests, data docs) from the Airflow side, no Spark.
- `fs`: Hadoop's FileSystem API (`Fs`), so one code path serves a local disk, HDFS or S3.
- `leases`: publish locks, read leases (retention never deletes what a running stage reads).
- `records`: run records, failure records and gate records beside the data.
- `staging`: a stage's output in a folder private to its attempt.
- `publish`: audit, then a journalled swap into place (`write_audit_publish_set`).
- `models`: model files (the ranker's text and metadata) published as one partition.

Nothing is imported here: `longtail.warehouse.layout` must stay importable without Spark.
"""
