"""Which partitions retention may delete (pure; stdlib only). The stage that deletes them is
stages/retention.py.

Windows are counted back from the run date, so a run of a date removes the same partitions however
often it is repeated; the newest partition of a table is never removed, whatever the window.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, timedelta

_DS = re.compile(r"^ds=(\d{4}-\d{2}-\d{2})(?:$|\.)")


def ds_of(name: str) -> date | None:
    """The night in a partition or leftover name: `ds=2026-01-31`, `ds=2026-01-31.attempt-x`."""
    m = _DS.match(name)
    if not m:
        return None
    try:
        return date.fromisoformat(m.group(1))
    except ValueError:
        return None


def window_start(ds: date, keep_nights: int) -> date:
    """The oldest night a window of keep_nights nights ending at ds keeps."""
    return ds - timedelta(days=keep_nights - 1)


def expired(days: Iterable[date], ds: date, keep_nights: int | None) -> list[date]:
    """Partitions of one table that fall out of the window: older than it, and not the newest."""
    days = sorted(set(days))
    if keep_nights is None or not days:
        return []
    start = window_start(ds, keep_nights)
    return [d for d in days[:-1] if d < start]


def first_copies(rows: Iterable[tuple[str, date]]) -> dict[date, set[str]]:
    """For (text_hash, night) rows of the embedding cache: per night, the hashes it holds that an
    earlier night holds too (the copies compaction removes; the earliest copy is the one read)."""
    first: dict[str, date] = {}
    rows = list(rows)
    for h, d in rows:
        if h not in first or d < first[h]:
            first[h] = d
    out: dict[date, set[str]] = {}
    for h, d in rows:
        if d != first[h]:
            out.setdefault(d, set()).add(h)
    return out
