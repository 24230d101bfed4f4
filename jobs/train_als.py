"""spark-submit entry point for the train_als stage; logic in longtail.stages.train_als."""

from longtail.stages.train_als import main

if __name__ == "__main__":
    raise SystemExit(main())
