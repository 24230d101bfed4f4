"""spark-submit entry point for the score stage; the logic lives in longtail.stages.score."""

from longtail.stages.score import main

if __name__ == "__main__":
    raise SystemExit(main())
