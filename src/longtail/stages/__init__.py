"""Stage entry points: read inputs, call the pure transforms, write-audit-publish the outputs.

Each stage has `run(spark, cfg) -> record` (used by the benchmark and tests) and `main(argv)`
(used by the thin spark-submit scripts in jobs/). The record, with the validated config, is
written beside the data under `_runs/ds=<date>/<stage>.json`.
"""
