"""spark-submit entry point for the content stage; logic in longtail.stages.content."""

from longtail.stages.content import main

if __name__ == "__main__":
    raise SystemExit(main())
