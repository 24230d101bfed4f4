"""spark-submit entry point for the item_space stage; logic in longtail.stages.item_space."""

from longtail.stages.item_space import main

if __name__ == "__main__":
    raise SystemExit(main())
