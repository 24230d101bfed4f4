"""spark-submit entry point for the publish stage; the logic lives in longtail.stages.publish."""

from longtail.stages.publish import main

if __name__ == "__main__":
    raise SystemExit(main())
