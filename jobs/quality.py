"""spark-submit entry point for the quality stage; logic in longtail.stages.quality."""

from longtail.stages.quality import main

if __name__ == "__main__":
    raise SystemExit(main())
