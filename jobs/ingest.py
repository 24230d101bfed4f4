"""spark-submit entry point for the ingest stage; the logic lives in longtail.stages.ingest."""

from longtail.stages.ingest import main

if __name__ == "__main__":
    raise SystemExit(main())
