"""The offline benchmark: replays the pipeline on public datasets against peer systems.

A top-level package beside `jobs/`, run from the repository root (`make bench`, `python -m
bench.replay`); it is not part of the `longtail` wheel, so Spark nodes never carry it, and
nothing under `src/longtail` imports it.
"""
