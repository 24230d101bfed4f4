"""spark-submit entry point for the retention stage (logic: longtail.stages.retention)."""

from longtail.stages.retention import main

if __name__ == "__main__":
    raise SystemExit(main())
