"""Benchmark helpers: turn the shared public datasets into landing folders the pipeline reads."""
