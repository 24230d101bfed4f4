"""spark-submit entry point of the item_audiences stage (longtail.stages.item_audiences)."""

from longtail.stages.item_audiences import main

if __name__ == "__main__":
    raise SystemExit(main())
