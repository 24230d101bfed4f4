"""Temporal replay split: one global time cutoff, so no held-out event can leak into training.

Per-user chronological splits leak the future into item statistics; a global cutoff does not.
The cutoff is a UTC midnight so the pipeline's own run for the day before it (which reads events
before run date + 1 day) trains on exactly the training events.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from longtail import columns as C
from longtail.ranker import new_pairs


@dataclass(frozen=True)
class Split:
    cutoff: pd.Timestamp  # first held-out instant (UTC midnight)
    train: pd.DataFrame  # events with ts < cutoff
    test: pd.DataFrame  # events with ts >= cutoff
    truth: dict[str, set[str]]  # eval user -> held-out items new to them
    eval_users: list[str]


def compute_cutoff(ts: pd.Series, holdout_fraction: float) -> pd.Timestamp:
    """Midnight starting the day that holds the (1 - holdout_fraction) quantile of event times.

    Rounding down to midnight holds out at least holdout_fraction (never less), and never all:
    if that midnight would leave no training data, the next one is used.
    """
    if not 0 < holdout_fraction < 1:
        raise ValueError("holdout_fraction must be in (0, 1)")
    ts = pd.to_datetime(ts, utc=True).sort_values(ignore_index=True)
    if ts.empty:
        raise ValueError("no events to split")
    q = ts.iloc[min(len(ts) - 1, int(len(ts) * (1 - holdout_fraction)))]
    cutoff = q.floor("D")
    if cutoff <= ts.iloc[0]:
        cutoff = cutoff + pd.Timedelta(days=1)
    if cutoff > ts.iloc[-1]:
        raise ValueError("all events fall on one day: no temporal split is possible")
    return cutoff


def make_split(events: pd.DataFrame, cutoff: pd.Timestamp) -> Split:
    """Eval users: training history and at least one held-out item they never interacted with."""
    ts = pd.to_datetime(events[C.TS], utc=True)
    train = events[ts < cutoff]
    test = events[ts >= cutoff]
    truth = new_pairs(train, test)  # the same labelling the ranker trains on
    return Split(cutoff=cutoff, train=train, test=test, truth=truth, eval_users=sorted(truth))


def validation_split(train: pd.DataFrame, fraction: float) -> Split:
    """The same protocol carved from the training period, for tuning peers without the test set."""
    return make_split(train, compute_cutoff(train[C.TS], fraction))
