"""Which partitions retention deletes, and its config (pure; the stage is tested in-process in
tests/reliability/test_retention.py)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from longtail import tables
from longtail.config import ConfigError, RetentionConfig
from longtail.retention import ds_of, expired, first_copies, window_start

DS = date(2026, 1, 31)


def nights(n: int, end: date = DS) -> list[date]:
    return [end - timedelta(days=i) for i in range(n)]


def test_ds_of_partition_and_leftover_names() -> None:
    assert ds_of("ds=2026-01-31") == DS
    assert ds_of("ds=2026-01-31.attempt-0a1b2c") == DS
    assert ds_of("ds=2026-01-31.attempt-0a1b2c.owner") == DS
    for name in ("_SUCCESS", "ds=2026-13-01", "ds=latest", "x=2026-01-31", "ds=2026-01-311"):
        assert ds_of(name) is None, name


def test_window_keeps_the_last_n_nights_up_to_the_run_date() -> None:
    days = nights(40)
    gone = expired(days, DS, 30)
    assert gone == sorted(days)[:10]
    assert window_start(DS, 30) == DS - timedelta(days=29)
    assert all(d < window_start(DS, 30) for d in gone)


def test_one_night_keeps_only_the_run_date() -> None:
    assert expired(nights(3), DS, 1) == [DS - timedelta(days=2), DS - timedelta(days=1)]


def test_the_newest_partition_is_never_deleted() -> None:
    old = [date(2025, 1, 1), date(2025, 6, 1)]
    assert expired(old, DS, 1) == [date(2025, 1, 1)]
    assert expired([date(2025, 1, 1)], DS, 1) == []


def test_later_nights_than_the_run_date_stay() -> None:
    """A backfill of an old night deletes what is older than its own window, nothing newer."""
    days = nights(10)
    assert expired(days, DS - timedelta(days=5), 2) == sorted(days)[:3]


def test_none_keeps_everything() -> None:
    assert expired(nights(400), DS, None) == []


def test_first_copies_marks_every_copy_but_the_earliest() -> None:
    d1, d2, d3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)
    rows = [("a", d1), ("a", d2), ("a", d3), ("b", d2), ("b", d3), ("c", d3)]
    assert first_copies(rows) == {d2: {"a"}, d3: {"a", "b"}}
    assert first_copies([("x", d1)]) == {}


def test_config_defaults_and_validation() -> None:
    cfg = RetentionConfig(ds="2026-01-31", warehouse="/wh")
    assert (cfg.keep_nights, cfg.keep_published_nights, cfg.compact_embedding_cache) == (
        30,
        None,
        True,
    )
    for bad in ({"keep_nights": 0}, {"keep_published_nights": 0}):
        with pytest.raises(ConfigError):
            RetentionConfig(ds="2026-01-31", warehouse="/wh", **bad)
    argv = ["--ds", "2026-01-31", "--warehouse", "/wh", "--keep-nights", "1"]
    assert (
        RetentionConfig.from_argv([*argv, "--keep-published-nights", "7"]).keep_published_nights
        == 7
    )
    assert RetentionConfig.from_argv(argv).keep_nights == 1


def test_every_table_has_a_retention_class() -> None:
    assert not set(tables.PUBLISHED) & set(tables.INTERMEDIATE)
    for group in ("bronze", "silver", "interactions", "factors", "quarantine", "embeddings"):
        assert any(group.rstrip("s") in t for t in tables.INTERMEDIATE), group
