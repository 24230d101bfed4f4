"""spark-submit entry point for the train_ranker stage; logic in longtail.stages.train_ranker."""

from longtail.stages.train_ranker import main

if __name__ == "__main__":
    raise SystemExit(main())
