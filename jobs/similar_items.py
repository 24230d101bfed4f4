"""spark-submit entry point for the similar_items stage; logic in longtail.stages.similar_items."""

from longtail.stages.similar_items import main

if __name__ == "__main__":
    raise SystemExit(main())
