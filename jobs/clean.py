"""spark-submit entry point for the clean stage; the logic lives in longtail.stages.clean."""

from longtail.stages.clean import main

if __name__ == "__main__":
    raise SystemExit(main())
