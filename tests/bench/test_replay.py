"""Benchmark replay helpers that need no Spark."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from bench.replay import _reuse_embedding_cache


def _part(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(name)


def test_cold_run_gets_the_published_runs_cache_as_an_earlier_night(tmp_path: Path) -> None:
    night = dt.date(2014, 5, 12)
    cache = tmp_path / "wh" / "_cache" / "embeddings" / "model=m"
    _part(cache / "ds=2014-05-12", "part-1.parquet")
    _part(cache / "ds=2014-05-11", "part-0.parquet")
    _part(cache / "ds=2014-04-01", "part-9.parquet")

    _reuse_embedding_cache(tmp_path / "wh", tmp_path / "cold", night)

    copied = tmp_path / "cold" / "_cache" / "embeddings" / "model=m"
    assert sorted(p.name for p in copied.iterdir()) == ["ds=2014-04-01", "ds=2014-05-11"]
    assert sorted(p.name for p in (copied / "ds=2014-05-11").iterdir()) == [
        "part-0.parquet",
        "part-1.parquet",
    ]
    # the published run's own cache is untouched
    assert (cache / "ds=2014-05-12" / "part-1.parquet").exists()


def test_no_cache_no_copy(tmp_path: Path) -> None:
    _reuse_embedding_cache(tmp_path / "wh", tmp_path / "cold", dt.date(2014, 5, 12))
    assert not (tmp_path / "cold").exists()
