"""Benchmark splits: what the pipeline may see, and which held-out pairs score it.

Two protocols for interactions, one for items, and the listing dates that keep the catalogue
from knowing the future:

- ``temporal`` (shop events): one global UTC-midnight cutoff, so no held-out event can leak into
  training. Per-user chronological splits leak the future into item statistics; a global cutoff
  does not. The pipeline runs for the day before the cutoff, which reads events before run
  date + 1 day, so it trains on exactly the training events.
- ``user_holdout`` (rating data): ratings are not shop events. A MovieLens user rates dozens of
  films they saw over years in one sitting and rarely comes back, so only ~30 of 610 users have
  ratings on both sides of any global cutoff. Here every user with enough history keeps their
  earlier ratings and loses the rest from their own cutoff on (strong generalisation with
  fold-in, as in Liang et al. 2018); the pipeline runs on the last day. Other users' later
  ratings stay in training: the stated price of this protocol.
- ``cold_start`` (items): a seeded random share of the items with training interactions loses
  all of them (the items stay listed, with their text); systems are scored only on the held-out
  pairs of those items (as in DropoutNet, Volkovs et al. 2017).
- Listing dates: an item can be recommended on a day only if it is listed by then. In k-core
  review data an item first reviewed after the cutoff exists only because it was going to be
  reviewed: listing it early hands the systems guaranteed future hits.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from longtail import columns as C
from longtail.evaluation.split import new_pairs

PROTOCOLS = ("temporal", "user_holdout")
LISTING_DATES = ("auto", "landing", "first_event")


@dataclass(frozen=True)
class Split:
    cutoff: pd.Timestamp  # temporal: first held-out instant; user_holdout: after the last event
    train: pd.DataFrame  # events the pipeline and every peer may see
    test: pd.DataFrame  # held-out events
    truth: dict[str, set[str]]  # eval user -> held-out items new to them
    eval_users: list[str]
    protocol: str = "temporal"
    # user_holdout: user -> first held-out instant (events at or after it are held out)
    user_cutoffs: pd.Series | None = None

    @property
    def run_date(self) -> date:
        """The pipeline's run date: the last day whose events it may read."""
        return (self.cutoff - pd.Timedelta(days=1)).date()


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


def user_holdout_split(events: pd.DataFrame, fraction: float, min_events: int = 5) -> Split:
    """Each user with >= min_events events loses the last `fraction` of them (at least one).

    Events are ordered by (ts, item_id); a user's cutoff is the time of their first held-out
    event, and every event of theirs at or after it is held out, so ties in time never straddle
    the cutoff. Users with fewer events stay whole in training.
    """
    if not 0 < fraction < 1:
        raise ValueError("fraction must be in (0, 1)")
    if events.empty:
        raise ValueError("no events to split")
    ts = pd.to_datetime(events[C.TS], utc=True)
    ordered = events.assign(**{C.TS: ts}).sort_values(
        [C.USER_ID, C.TS, C.ITEM_ID], kind="stable", ignore_index=True
    )
    n = ordered.groupby(C.USER_ID)[C.ITEM_ID].transform("size")
    pos = ordered.groupby(C.USER_ID).cumcount()
    n_hold = np.maximum(1, np.floor(n * fraction)).astype(np.int64)
    first_held = (n >= min_events) & (pos == n - n_hold)
    user_cutoffs = ordered.loc[first_held].set_index(C.USER_ID)[C.TS].rename("user_cutoff")
    cut = ordered[C.USER_ID].map(user_cutoffs)
    held = cut.notna() & (ordered[C.TS] >= cut)
    train, test = ordered[~held], ordered[held]
    truth = new_pairs(train, test)
    last_day = ts.max().floor("D")
    return Split(
        cutoff=last_day + pd.Timedelta(days=1),
        train=train,
        test=test,
        truth=truth,
        eval_users=sorted(truth),
        protocol="user_holdout",
        user_cutoffs=user_cutoffs,
    )


def split_events(events: pd.DataFrame, protocol: str, fraction: float) -> Split:
    if protocol == "temporal":
        return make_split(events, compute_cutoff(events[C.TS], fraction))
    if protocol == "user_holdout":
        return user_holdout_split(events, 2 * fraction)
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


def validation_split(train: pd.DataFrame, fraction: float, protocol: str = "temporal") -> Split:
    """The same protocol carved from the training period, for tuning peers without the test set."""
    return split_events(train, protocol, fraction)


def listing_dates(
    landing_first_seen: pd.Series, events: pd.DataFrame, mode: str = "auto"
) -> pd.Series:
    """item_id -> the date it is listed from (NaT = listed from the start, as the pipeline reads
    an item without first_seen).

    `landing`: the landing's first_seen as it is; `first_event`: the day of the item's first
    event; `auto`: the landing's value, else the first event. An item without any event keeps its
    landing value under every mode: there is no evidence of when it was listed.
    """
    if mode not in LISTING_DATES:
        raise ValueError(f"unknown listing-dates mode {mode!r}; expected one of {LISTING_DATES}")
    given = pd.to_datetime(landing_first_seen, utc=True).dt.floor("D")
    if mode == "landing":
        return given
    first = pd.to_datetime(events[C.TS], utc=True).groupby(events[C.ITEM_ID]).min().dt.floor("D")
    first = first.reindex(given.index)
    if mode == "first_event":
        return first.fillna(given)
    return given.fillna(first)


def pick_cold_items(train: pd.DataFrame, fraction: float, seed: int) -> set[str]:
    """A seeded random `fraction` (at least one) of the items with training interactions."""
    items = np.array(sorted(set(train[C.ITEM_ID])), dtype=object)
    if len(items) == 0:
        return set()
    n = max(1, round(len(items) * fraction))
    rng = np.random.default_rng(seed)
    return set(rng.choice(items, size=n, replace=False).tolist())


def cold_start_truth(truth: dict[str, set[str]], cold: Collection[str]) -> dict[str, set[str]]:
    """The held-out pairs that fall on cold items, per user (users without one left out)."""
    cold = set(cold)
    out = {u: items & cold for u, items in truth.items()}
    return {u: s for u, s in out.items() if s}
