"""Seeded generator of a believable small online shop, written as a landing folder.

Why: the pipeline needs a local, reproducible input that looks like the real thing (long-tail
popularity, users with tastes, late-arriving items, new users, a bot and the usual dirty rows) so
that every stage, test and demo can run without a real data drop. Everything below is decided by
the seed, nothing by the clock: two runs with the same config write byte-identical files. A dozen
Chinese-titled products (a few shoppers' history, one brand-new per kind) come from a stream of
their own after the rest, which is byte for byte what it is without them. The word lists live in
the package data file sample_vocabulary.json.

Layout written (the landing contract):
    events/dt=YYYY-MM-DD/part-0.csv.gz   one file per UTC day; dirty-timestamp rows in the last day
    items/items.parquet                  the catalogue (plus 3 dirty rows, then the Chinese items)
    items/late_items.jsonl               items first seen in the last 7 days, never interacted with
                                         (the brand-new Chinese items last)
    users/users.csv                      user_id, signup_date, country
    rules/rules.yaml                     the shop's business rules (with `rules`, the default)
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from longtail.columns import (
    AVAILABLE,
    BRAND,
    CATEGORY,
    DESCRIPTION,
    EVENT_TYPE,
    FIRST_SEEN,
    ITEM_ID,
    PRICE,
    QUANTITY,
    STOCK,
    TITLE,
    TS,
    USER_ID,
    VALUE,
)

SIGNUP_DATE = "signup_date"
COUNTRY = "country"
EVENT_COLUMNS = (USER_ID, ITEM_ID, TS, EVENT_TYPE, QUANTITY, VALUE)
ITEM_COLUMNS = (ITEM_ID, TITLE, DESCRIPTION, CATEGORY, BRAND, PRICE, FIRST_SEEN)
USER_COLUMNS = (USER_ID, SIGNUP_DATE, COUNTRY)

OK_MARKER = "_SAMPLE_OK"
ZIPF_EXPONENT = 1.1
ZIPF_OFFSET = 1.0  # Zipf-Mandelbrot: flattens the very head a little, keeps the tail
RECENT_DAYS = 7  # "late" items and "new" users live in the last RECENT_DAYS days of the window
DIRTY_KINDS = (
    "null_user_id",
    "null_item_id",
    "unknown_item",
    "duplicate",
    "future_ts",
    "epoch_zero_ts",
    "negative_quantity",
    "unparseable_ts",
    "unknown_event_type",
)
# Kinds whose timestamp has no sensible day: they land in the last day's file.
_BAD_TS_KINDS = frozenset({"future_ts", "epoch_zero_ts", "unparseable_ts"})

_VIEW, _CART, _PURCHASE, _RATING, _REVIEW = range(5)
_TYPE_NAMES = ("view", "add_to_cart", "purchase", "rating", "review")


@dataclass(frozen=True)
class _Category:
    name: str
    nouns: tuple[tuple[str, tuple[str, ...]], ...]  # (noun, the variants that make sense for it)
    adjectives: tuple[str, ...]
    brands: tuple[str, ...]
    blurbs: tuple[str, ...]
    median_price: float
    price_sigma: float


@dataclass(frozen=True)
class _ChineseKind:
    """A kind of Chinese-titled product: same-kind nouns share characters (保温杯, 绿茶)."""

    category: str
    nouns: tuple[tuple[str, tuple[str, ...]], ...]
    new: frozenset[str]  # nouns first seen in the last days, never sold: cold items
    coloured: bool
    brands: tuple[str, ...]
    blurbs: tuple[str, ...]
    median_price: float
    price_sigma: float


VOCABULARY_FILE = "sample_vocabulary.json"


def _vocabulary() -> dict:
    """The word lists (package data, so that the code reads as code)."""
    text = resources.files("longtail").joinpath(VOCABULARY_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def _nouns(nouns: dict[str, list[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((noun, tuple(variants)) for noun, variants in nouns.items())


_VOCABULARY = _vocabulary()
# Category-specific vocabulary, so that item text alone carries the category signal.
CATALOG: tuple[_Category, ...] = tuple(
    _Category(
        c["name"],
        _nouns(c["nouns"]),
        tuple(c["adjectives"]),
        tuple(c["brands"]),
        tuple(c["blurbs"]),
        float(c["median_price"]),
        float(c["price_sigma"]),
    )
    for c in _VOCABULARY["categories"]
)
_COLOURS: tuple[str, ...] = tuple(_VOCABULARY["colours"])
CHINESE_KINDS: tuple[_ChineseKind, ...] = tuple(
    _ChineseKind(
        k["category"],
        _nouns(k["nouns"]),
        frozenset(k["new"]),
        bool(k["coloured"]),
        tuple(k["brands"]),
        tuple(k["blurbs"]),
        float(k["median_price"]),
        float(k["price_sigma"]),
    )
    for k in _VOCABULARY["chinese"]["kinds"]
)
_CHINESE_COLOURS: tuple[str, ...] = tuple(_VOCABULARY["chinese"]["colours"])
del _VOCABULARY

_COUNTRIES = ("US", "GB", "DE", "FR", "NL", "SE", "ES", "IT", "PL", "CA", "IE", "DK")
_COUNTRY_WEIGHTS = (0.30, 0.18, 0.13, 0.09, 0.06, 0.04, 0.05, 0.05, 0.04, 0.03, 0.02, 0.01)
# Share of sessions starting in each UTC hour: quiet nights, a lunch bump, an evening peak.
_HOUR_WEIGHTS = (
    2, 1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 6, 7, 7, 6, 6, 6, 7, 8, 10, 10, 9, 6, 4,
)  # fmt: skip


@dataclass(frozen=True)
class SampleConfig:
    """Knobs of the synthetic shop; the defaults give ~90k events in a few seconds."""

    n_users: int = 3000
    n_items: int = 2000
    n_days: int = 60
    end_date: str = "2026-01-31"  # last day of the data (UTC); events span n_days ending here
    seed: int = 7
    dirty_fraction: float = 0.03
    n_categories: int = 12
    late_item_fraction: float = 0.05  # items first seen in the last ~7 days, with text, no events
    new_user_fraction: float = 0.05  # users whose first event is in the last ~7 days (1-3 events)
    # A few popular items unavailable (available=false, stock=0) and a rules file (exclusions, a
    # cap per category, a boost): the shop's business rules, end to end.
    rules: bool = True
    # A dozen Chinese-titled products of three kinds (CHINESE_KINDS), most with a few shoppers'
    # history, one per kind brand-new: the catalogue-in-any-language path, on the sample.
    chinese_items: bool = True

    def validate(self) -> None:
        """Raise ValueError on values that would give an empty or meaningless shop."""
        if self.n_users < 10:
            raise ValueError(f"n_users must be >= 10, got {self.n_users}")
        if not 1 <= self.n_categories <= len(CATALOG):
            raise ValueError(
                f"n_categories must be in [1, {len(CATALOG)}], got {self.n_categories}"
            )
        if self.n_items < max(10, 4 * self.n_categories):
            raise ValueError(f"n_items must be >= max(10, 4 * n_categories), got {self.n_items}")
        if self.n_days < RECENT_DAYS + 3:
            raise ValueError(f"n_days must be >= {RECENT_DAYS + 3}, got {self.n_days}")
        try:
            date.fromisoformat(self.end_date)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"end_date must be YYYY-MM-DD, got {self.end_date!r}") from exc
        for name in ("dirty_fraction", "late_item_fraction", "new_user_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.late_item_fraction > 0.5:
            raise ValueError("late_item_fraction must be <= 0.5 (most items need a history)")
        if self.new_user_fraction > 0.5:
            raise ValueError("new_user_fraction must be <= 0.5 (most users need a history)")


@dataclass
class _Shop:
    """The latent world: catalogue, users and their hidden tastes."""

    start: date
    end: date
    categories: list[_Category]
    items: pd.DataFrame  # clean catalogue in id order, with latent columns
    users: pd.DataFrame  # in id order, with latent columns
    tastes: np.ndarray  # (n_users, n_categories) category preference, rows sum to 1


def _day_epoch(d: date) -> int:
    return (d - date(1970, 1, 1)).days * 86400


def _iso_seconds(epochs: np.ndarray) -> np.ndarray:
    return np.char.add(np.datetime_as_string(epochs.astype("datetime64[s]"), unit="s"), "Z")


def _build_items(
    cfg: SampleConfig, rng: np.random.Generator, start: date, end: date, cats: list[_Category]
) -> pd.DataFrame:
    n, k = cfg.n_items, len(cats)
    # Uneven category sizes, every category with a few items.
    sizes = 3 + rng.multinomial(n - 3 * k, rng.dirichlet(np.full(k, 4.0)))
    cat_idx = np.repeat(np.arange(k), sizes)
    rng.shuffle(cat_idx)

    n_late = round(n * cfg.late_item_fraction)
    late = np.zeros(n, dtype=bool)
    left = sizes.copy()
    for i in rng.permutation(n):  # keep >= 2 regular items per category
        if late.sum() >= n_late:
            break
        if left[cat_idx[i]] > 2:
            late[i] = True
            left[cat_idx[i]] -= 1

    titles, descs, brands, prices = [], [], [], []
    seen_titles: set[str] = set()
    for i in range(n):
        c = cats[cat_idx[i]]
        # Brands are Zipf-ish within a category: the first one or two dominate.
        bw = 1.0 / np.arange(1, len(c.brands) + 1)
        brand = c.brands[rng.choice(len(c.brands), p=bw / bw.sum())]
        for _ in range(8):  # a few tries for a title not used yet
            adj = c.adjectives[rng.integers(len(c.adjectives))]
            noun, variants = c.nouns[rng.integers(len(c.nouns))]
            variant = variants[rng.integers(len(variants))] if variants else ""
            colour = _COLOURS[rng.integers(len(_COLOURS))] if rng.random() < 0.4 else ""
            words = [brand] if rng.random() < 0.25 else []
            words += [adj, colour, noun, variant]
            title = " ".join(w for w in words if w)
            if title not in seen_titles:
                break
        seen_titles.add(title)
        blurb = rng.choice(len(c.blurbs), size=2, replace=False)
        what = f"{adj} {colour.lower() + ' ' if colour else ''}{noun.lower()}"
        size = f" ({variant})" if variant else ""
        descs.append(
            f"{what[0].upper()}{what[1:]} by {brand}{size}. "
            f"{c.blurbs[blurb[0]]} {c.blurbs[blurb[1]]}"
        )
        titles.append(title)
        brands.append(brand)
        raw = rng.lognormal(np.log(c.median_price), c.price_sigma)
        prices.append(round(max(np.ceil(raw) - 0.01, 0.99), 2))

    n_days = (end - start).days + 1
    first = np.empty(n, dtype=np.int64)  # day offset relative to start (negative: before window)
    in_window = rng.random(n) < 0.15
    first[:] = -rng.integers(1, 720, size=n)
    first[in_window] = rng.integers(0, n_days - RECENT_DAYS, size=int(in_window.sum()))
    first[late] = rng.integers(n_days - RECENT_DAYS, n_days, size=int(late.sum()))

    df = pd.DataFrame(
        {
            CATEGORY: [cats[j].name for j in cat_idx],
            "cat_idx": cat_idx,
            TITLE: titles,
            DESCRIPTION: descs,
            BRAND: brands,
            PRICE: prices,
            "first_day": first,
            "late": late,
            "tiebreak": rng.random(n),
            # Latent quality drives star ratings; popularity rank drives Zipf demand.
            "quality": np.clip(rng.normal(4.0, 0.45, n), 2.3, 4.9),
        }
    )
    df = df.sort_values(["first_day", "tiebreak"], kind="stable").reset_index(drop=True)
    df.insert(0, ITEM_ID, [f"I{j + 1:06d}" for j in range(n)])
    df[FIRST_SEEN] = [(start + timedelta(days=int(d))).isoformat() for d in df["first_day"]]
    regular = ~df["late"].to_numpy()
    weight = np.zeros(n)
    # Zipf-Mandelbrot demand by rank within the category (the session picks the category first).
    cat_sorted = df["cat_idx"].to_numpy()
    for c in range(k):
        members = np.flatnonzero(regular & (cat_sorted == c))
        ranks = 1.0 + rng.permutation(len(members))
        weight[members] = (ranks + ZIPF_OFFSET) ** -ZIPF_EXPONENT
    df["weight"] = weight
    return df.drop(columns="tiebreak")


def _build_users(
    cfg: SampleConfig, rng: np.random.Generator, n_days: int, cat_weights: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray]:
    n, k = cfg.n_users, len(cat_weights)
    has_bot = cfg.dirty_fraction > 0
    n_new = round(n * cfg.new_user_fraction)
    kind = np.array(["regular"] * (n - n_new - has_bot) + ["new"] * n_new + ["bot"] * has_bot)
    kind = kind[rng.permutation(n)]

    signup = -rng.integers(1, 730, size=n)
    late_join = (rng.random(n) < 0.25) & (kind == "regular")
    signup[late_join] = rng.integers(
        0, max(1, n_days - 2 * RECENT_DAYS + 1), size=int(late_join.sum())
    )
    is_new = kind == "new"
    signup[is_new] = rng.integers(n_days - RECENT_DAYS, n_days, size=int(is_new.sum()))
    cw = np.array(_COUNTRY_WEIGHTS)
    country = rng.choice(len(_COUNTRIES), size=n, p=cw / cw.sum())

    # Tastes: 1-3 favourite categories take ~80% of a user's attention, the rest follows the crowd.
    tastes = np.empty((n, k))
    n_fav = np.minimum(rng.choice([1, 2, 3], size=n, p=[0.4, 0.4, 0.2]), k)
    for u in range(n):
        fav = rng.choice(k, size=n_fav[u], replace=False, p=cat_weights)
        focus = rng.beta(8, 2)
        tastes[u] = (1 - focus) * cat_weights
        tastes[u, fav] += focus * rng.dirichlet(np.ones(n_fav[u]))
    df = pd.DataFrame(
        {"kind": kind, "signup_day": signup, "country_idx": country, "tiebreak": rng.random(n)}
    )
    order = np.lexsort((df["tiebreak"].to_numpy(), df["signup_day"].to_numpy()))
    df = df.iloc[order].reset_index(drop=True)
    df.insert(0, USER_ID, [f"U{j + 1:06d}" for j in range(n)])
    # Heavy-tailed activity: the median user has a handful of sessions, a few have dozens.
    scale = n_days / 60
    df["sessions"] = np.maximum(1, np.round(rng.lognormal(np.log(5.0 * scale), 1.1, n)))
    return df.drop(columns="tiebreak"), tastes[order]


def _build_shop(cfg: SampleConfig, rng: np.random.Generator) -> _Shop:
    end = date.fromisoformat(cfg.end_date)
    start = end - timedelta(days=cfg.n_days - 1)
    cats = list(CATALOG[: cfg.n_categories])
    items = _build_items(cfg, rng, start, end, cats)
    cat_weights = rng.dirichlet(np.full(len(cats), 3.0))
    users, tastes = _build_users(cfg, rng, cfg.n_days, cat_weights)
    return _Shop(start, end, cats, items, users, tastes)


def _day_weights(start: date, n_days: int) -> list[float]:
    """Relative traffic per day: weekends, pre-Christmas rush, a quiet Christmas, slow growth."""
    out = []
    for d in range(n_days):
        day = start + timedelta(days=d)
        w = 1.2 if day.weekday() >= 5 else 1.0
        if (day.month == 11 and day.day >= 25) or (day.month == 12 and day.day <= 22):
            w *= 1.3
        if day.month == 12 and 24 <= day.day <= 26:
            w *= 0.7
        out.append(w * (1 + 0.004 * d))
    return out


def _simulate(cfg: SampleConfig, shop: _Shop, r: random.Random) -> list[tuple]:
    """Sessions of views -> carts -> purchases -> ratings/reviews, per user, in Python for clarity.

    Rows are (user_idx, item_idx, epoch_s, type, quantity, value); quantity/value None if absent.
    """
    n_days = cfg.n_days
    base = _day_epoch(shop.start)
    window_end = base + n_days * 86400  # exclusive
    recent = n_days - RECENT_DAYS

    cum_day = list(np.cumsum(_day_weights(shop.start, n_days)))
    cum_hour = list(np.cumsum(_HOUR_WEIGHTS))

    def pick_day(lo: int, hi: int) -> int:
        """A day in [lo, hi], weighted by traffic."""
        lo_w = cum_day[lo - 1] if lo > 0 else 0.0
        u = lo_w + r.random() * (cum_day[hi] - lo_w)
        return min(bisect.bisect_right(cum_day, u), hi)

    items = shop.items
    cat_of = items["cat_idx"].to_numpy()
    first_day = items["first_day"].tolist()
    price = items[PRICE].tolist()
    quality = items["quality"].tolist()
    weight = items["weight"].to_numpy()
    by_cat = [np.flatnonzero((cat_of == c) & (weight > 0)) for c in range(len(shop.categories))]
    cat_members = [m.tolist() for m in by_cat]
    cat_cum = [list(np.cumsum(weight[m])) for m in by_cat]

    def pick_item(c: int, day: int) -> int | None:
        """Zipf-weighted item of category c that already existed on that day."""
        cum = cat_cum[c]
        for _ in range(6):
            i = cat_members[c][min(bisect.bisect_right(cum, r.random() * cum[-1]), len(cum) - 1)]
            if first_day[i] <= day:
                return i
        return None

    rows: list[tuple] = []
    users = shop.users
    for u, (kind, signup, n_sessions) in enumerate(
        zip(users["kind"], users["signup_day"], users["sessions"], strict=True)
    ):
        if kind == "bot":
            continue
        taste_cum = list(np.cumsum(shop.tastes[u]))
        if kind == "new":
            days = [int(signup)]
        else:
            lo = max(0, int(signup))
            days = [pick_day(lo, recent - 1)]  # a history before the "new user" window
            days += [pick_day(lo, n_days - 1) for _ in range(int(n_sessions) - 1)]
        user_rows: list[tuple] = []
        for day in sorted(days):
            hour = bisect.bisect_right(cum_hour, r.random() * cum_hour[-1])
            if day == n_days - 1:
                hour = min(hour, 20)  # sessions on the last day end before midnight
            t = base + day * 86400 + hour * 3600 + r.randrange(3600)
            c = min(bisect.bisect_right(taste_cum, r.random() * taste_cum[-1]), len(taste_cum) - 1)
            viewed: list[int] = []
            basket: list[tuple[int, int]] = []
            while True:
                i = pick_item(c, day)
                if i is not None and i not in viewed:
                    viewed.append(i)
                    user_rows.append((u, i, t, _VIEW, None, None))
                    t += r.randint(15, 240)
                    if r.random() < 0.2:  # looked at it again
                        t += r.randint(30, 400)
                        user_rows.append((u, i, t, _VIEW, None, None))
                    if r.random() < 0.14:
                        qty = 1 if r.random() < 0.75 else r.randint(2, 5)
                        t += r.randint(5, 60)
                        user_rows.append((u, i, t, _CART, qty, None))
                        if r.random() < 0.55:
                            basket.append((i, qty))
                    elif r.random() < 0.015:  # "buy now" straight from the product page
                        basket.append((i, 1))
                if len(viewed) >= 8 or r.random() > 0.55:
                    break
                if r.random() < 0.15:  # wander to another category mid-session
                    c = min(
                        bisect.bisect_right(taste_cum, r.random() * taste_cum[-1]),
                        len(taste_cum) - 1,
                    )
            t += r.randint(30, 300)
            for i, qty in basket:
                t += r.randint(1, 5)
                user_rows.append((u, i, t, _PURCHASE, qty, price[i]))
                if kind == "new":
                    continue
                later = t + r.randint(1, 14) * 86400 + r.randrange(-7200, 7200)
                if r.random() < 0.3 and later < window_end:
                    stars = max(1, min(5, round(r.gauss(quality[i], 0.9))))
                    user_rows.append((u, i, later, _RATING, None, stars))
                    if r.random() < 0.35:
                        user_rows.append((u, i, later + r.randint(20, 600), _REVIEW, None, None))
        user_rows.sort(key=lambda row: row[2])
        if kind == "new":  # a new user has only a handful of events
            user_rows = user_rows[: r.choice((1, 1, 1, 2, 2, 3))]
        rows.extend(row for row in user_rows if row[2] < window_end)
    return rows


def _bot_rows(cfg: SampleConfig, shop: _Shop, r: random.Random) -> list[tuple]:
    """One crawler account: thousands of views in a single day, spread evenly over the catalogue."""
    bots = np.flatnonzero(shop.users["kind"].to_numpy() == "bot")
    if len(bots) == 0:
        return []
    u = int(bots[0])
    day = r.randint(cfg.n_days // 3, cfg.n_days - RECENT_DAYS - 1)
    first_day = shop.items["first_day"].to_numpy()
    pool = np.flatnonzero((shop.items["weight"].to_numpy() > 0) & (first_day <= day)).tolist()
    n = int(np.clip(cfg.n_users, 1000, 3000))  # well above any sane per-user daily cap
    t0 = _day_epoch(shop.start) + day * 86400
    secs = sorted(r.sample(range(86400), n))  # distinct seconds: no accidental duplicates
    return [(u, r.choice(pool), t0 + s, _VIEW, None, None) for s in secs]


def _render(rows: list[tuple], shop: _Shop, items: pd.DataFrame | None = None) -> pd.DataFrame:
    """Latent tuples -> landing strings (plus an epoch column used for partitioning); item
    indices are positions in `items` (the shop's catalogue by default)."""
    arr = pd.DataFrame(rows, columns=["u", "i", "epoch", "type", "qty", "val"])
    user_ids = shop.users[USER_ID].to_numpy()
    item_ids = (shop.items if items is None else items)[ITEM_ID].to_numpy()
    qty = ["" if row[4] is None else str(row[4]) for row in rows]
    val = [
        "" if row[5] is None else f"{row[5]:.2f}" if row[3] == _PURCHASE else str(row[5])
        for row in rows
    ]
    return pd.DataFrame(
        {
            USER_ID: user_ids[arr["u"].to_numpy()],
            ITEM_ID: item_ids[arr["i"].to_numpy()],
            TS: _iso_seconds(arr["epoch"].to_numpy()),
            EVENT_TYPE: np.array(_TYPE_NAMES)[arr["type"].to_numpy()],
            QUANTITY: np.array(qty, dtype=object),
            VALUE: np.array(val, dtype=object),
            "epoch": arr["epoch"].to_numpy(),
            "kind": "clean",
        }
    )


def _dirty_rows(
    cfg: SampleConfig, shop: _Shop, clean: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    """Mutated copies of clean rows, roughly dirty_fraction of them, every kind a few times."""
    if cfg.dirty_fraction <= 0:
        return clean.iloc[:0]
    total = round(cfg.dirty_fraction * len(clean))
    per_kind = max(3, total // len(DIRTY_KINDS))
    counts = dict.fromkeys(DIRTY_KINDS, per_kind)
    counts["duplicate"] += max(0, total - per_kind * len(DIRTY_KINDS))
    new_users = set(shop.users.loc[shop.users["kind"] == "new", USER_ID])
    eligible = ~clean[USER_ID].isin(new_users).to_numpy()  # new users keep exactly 1-3 events
    purchases = np.flatnonzero(eligible & (clean[EVENT_TYPE].to_numpy() == "purchase"))
    others = np.flatnonzero(eligible)
    neg = rng.choice(
        purchases, size=min(counts["negative_quantity"], len(purchases)), replace=False
    )
    pool = np.setdiff1d(others, neg)
    rest = rng.choice(pool, size=min(len(pool), total + len(DIRTY_KINDS) * 3), replace=False)
    last_day = _day_epoch(shop.end)
    parts, pos = [], 0
    for kind in DIRTY_KINDS:
        if kind == "negative_quantity":
            d = clean.iloc[neg].copy()
            d[QUANTITY] = [str(-int(rng.integers(1, 6))) for _ in range(len(d))]
        else:
            d = clean.iloc[rest[pos : pos + counts[kind]]].copy()
            pos += counts[kind]
        m = len(d)
        if kind == "null_user_id":
            d[USER_ID] = None
        elif kind == "null_item_id":
            d[ITEM_ID] = None
        elif kind == "unknown_item":
            d[ITEM_ID] = [
                f"I{cfg.n_items + 50_000 + int(j):06d}"
                for j in rng.choice(900_000, size=m, replace=False)
            ]
        elif kind == "future_ts":
            future = _day_epoch(date(2035, 1, 1)) + rng.integers(0, 365 * 86400, size=m)
            d[TS] = _iso_seconds(future)
        elif kind == "epoch_zero_ts":  # both spellings of 1970-01-01 00:00:00 UTC
            d[TS] = ["0" if j % 2 else "1970-01-01T00:00:00Z" for j in range(m)]
        elif kind == "unparseable_ts":
            d[TS] = "not-a-date"
        elif kind == "unknown_event_type":
            d[EVENT_TYPE] = "click?"
        if kind in _BAD_TS_KINDS:  # file them under the last day, at random points in it
            d["epoch"] = last_day + rng.integers(0, 86400, size=m)
        d["kind"] = kind
        parts.append(d)
    return pd.concat(parts, ignore_index=True)


def _item_table(df: pd.DataFrame) -> pa.Table:
    schema = pa.schema(
        [
            (ITEM_ID, pa.string()),
            (TITLE, pa.string()),
            (DESCRIPTION, pa.string()),
            (CATEGORY, pa.string()),
            (BRAND, pa.string()),
            (PRICE, pa.float64()),
            (FIRST_SEEN, pa.string()),
        ]
    )
    return pa.Table.from_pydict({c: df[c].tolist() for c in ITEM_COLUMNS}, schema=schema)


def _write_csv_gz(df: pd.DataFrame, path: Path) -> None:
    text = df.to_csv(index=False, lineterminator="\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0))


def generate(out_dir: str | os.PathLike, cfg: SampleConfig = SampleConfig()) -> dict:  # noqa: B008
    """Write the landing folder; return a summary dict (counts, dirty rows by kind, date range)."""
    cfg.validate()
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; generate() writes into a fresh folder")
    seeds = np.random.SeedSequence(cfg.seed).spawn(3)
    rng = np.random.default_rng(seeds[0])
    shop = _build_shop(cfg, rng)
    sim = random.Random(int(seeds[1].generate_state(1)[0]))

    clean = _render(_simulate(cfg, shop, sim), shop)
    clean = clean.drop_duplicates(subset=list(EVENT_COLUMNS), ignore_index=True)
    bot = _render(_bot_rows(cfg, shop, sim), shop) if cfg.dirty_fraction > 0 else clean.iloc[:0]
    bot = bot.assign(kind="bot").drop_duplicates(subset=list(EVENT_COLUMNS))
    dirty = _dirty_rows(cfg, shop, clean, np.random.default_rng(seeds[2]))
    # The Chinese-titled products come from a stream of their own, after the rest: the rest of the
    # shop (its rows, dirty rows and rules) is what it is without them.
    chinese, chinese_items = clean.iloc[:0], None
    if cfg.chinese_items:
        crng = np.random.default_rng([cfg.seed, 86])
        chinese_items = _chinese_items(cfg, shop, crng)
        chinese_rows = _chinese_rows(cfg, shop, chinese_items, clean, crng)
        if chinese_rows:
            chinese = _render(chinese_rows, shop, chinese_items)
            chinese = chinese.drop_duplicates(subset=list(EVENT_COLUMNS), ignore_index=True)
    events = pd.concat([clean, bot, dirty, chinese], ignore_index=True)
    # A mutated copy may coincide with another row; only the "duplicate" kind may repeat a row.
    collide = events.duplicated(subset=list(EVENT_COLUMNS)) & (events["kind"] != "duplicate")
    events = events[~collide.to_numpy()].reset_index(drop=True)
    events["dt"] = _iso_seconds(events["epoch"].to_numpy()).astype("U10")
    events = events.sort_values("epoch", kind="stable")  # a log: in time order within a day

    out.mkdir(parents=True, exist_ok=True)
    days = [(shop.start + timedelta(days=d)).isoformat() for d in range(cfg.n_days)]
    groups = dict(list(events.groupby("dt", sort=True)))
    for day in days:
        part = groups.get(day, events.iloc[:0])
        _write_csv_gz(part[list(EVENT_COLUMNS)], out / "events" / f"dt={day}" / "part-0.csv.gz")
    stray = set(groups) - set(days)
    if stray:  # a bug in the simulator, not a property of the data
        raise RuntimeError(f"events outside the window: {sorted(stray)}")

    items = shop.items
    regular, late = items[~items["late"]], items[items["late"]]
    # Dirty catalogue rows: an exact duplicate, a conflicting re-send with a new price, no title.
    pick = np.random.default_rng(seeds[2].spawn(1)[0]).choice(len(regular), 2, replace=False)
    exact = regular.iloc[[pick[0]]]
    repriced = regular.iloc[[pick[1]]].assign(**{PRICE: lambda d: (d[PRICE] * 1.1).round(2)})
    untitled = regular.iloc[[pick[1]]].assign(**{ITEM_ID: f"I{cfg.n_items + 1:06d}", TITLE: None})
    item_rows = pd.concat([regular, exact, repriced, untitled], ignore_index=True)
    late_rows = late[list(ITEM_COLUMNS)]
    if chinese_items is not None:  # after the rest, so the other rows are as they were
        new = chinese_items["late"].to_numpy()
        item_rows = pd.concat([item_rows, chinese_items[~new]], ignore_index=True)
        late_rows = pd.concat([late_rows, chinese_items.loc[new, list(ITEM_COLUMNS)]])
    (out / "items").mkdir(parents=True, exist_ok=True)
    table = _item_table(item_rows)
    if cfg.rules:
        off, sold_out, excluded, boosted = _rule_items(cfg, regular, clean, exact, repriced)
        table = _with_availability(table, off, sold_out)
        _write_rules(out, excluded, boosted)
    pq.write_table(table, out / "items" / "items.parquet", compression="snappy")
    with open(out / "items" / "late_items.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for rec in late_rows.to_dict(orient="records"):
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")

    users = shop.users.assign(
        **{
            SIGNUP_DATE: [
                (shop.start + timedelta(days=int(d))).isoformat() for d in shop.users["signup_day"]
            ],
            COUNTRY: np.array(_COUNTRIES)[shop.users["country_idx"].to_numpy()],
        }
    )
    (out / "users").mkdir(parents=True, exist_ok=True)
    users[list(USER_COLUMNS)].to_csv(out / "users" / "users.csv", index=False, lineterminator="\n")

    is_clean = events["kind"] == "clean"
    by_type = events.loc[is_clean, EVENT_TYPE].value_counts()
    dirty_counts = events.loc[~is_clean & (events["kind"] != "bot"), "kind"].value_counts()
    bot_ids = users.loc[users["kind"] == "bot", USER_ID].tolist()
    new_ids = set(users.loc[users["kind"] == "new", USER_ID])
    n_chinese = 0 if chinese_items is None else len(chinese_items)
    return {
        "config": asdict(cfg),
        "start_date": shop.start.isoformat(),
        "end_date": shop.end.isoformat(),
        "event_files": len(days),
        "users": len(users),
        "new_users": int(events.loc[is_clean, USER_ID].drop_duplicates().isin(new_ids).sum()),
        "bot_user": bot_ids[0] if bot_ids else None,
        "bot_events": int((events["kind"] == "bot").sum()),
        "items": len(items) + n_chinese,
        "categories": [c.name for c in shop.categories],
        "item_rows_parquet": len(item_rows),
        "late_items": len(late_rows),
        "dirty_item_rows": {"duplicate_item_id": 2, "null_title": 1},
        "events": len(events),
        "clean_events": int(is_clean.sum()),
        "clean_events_by_type": {t: int(n) for t, n in sorted(by_type.items())},
        "dirty_events": {k: int(dirty_counts.get(k, 0)) for k in DIRTY_KINDS},
        "unavailable_items": sorted([*off, *sold_out]) if cfg.rules else [],
        "excluded_items": sorted(excluded) if cfg.rules else [],
        "chinese_items": [] if chinese_items is None else chinese_items[ITEM_ID].tolist(),
        "new_chinese_items": []
        if chinese_items is None
        else chinese_items.loc[chinese_items["late"], ITEM_ID].tolist(),
    }


# --- Chinese-titled products: a few kinds, a few shoppers, a cold item per kind ---------------


def _chinese_items(cfg: SampleConfig, shop: _Shop, rng: np.random.Generator) -> pd.DataFrame:
    """One product per noun of each of CHINESE_KINDS, with ids after the regular items (and the
    untitled dirty row's). Titles and descriptions follow the English ones' pattern; a kind's
    `new` nouns are first seen in the last RECENT_DAYS days (late items: no events), the rest
    were listed before the window."""
    records = []
    for k, kind in enumerate(CHINESE_KINDS):
        for noun, variants in kind.nouns:
            brand = kind.brands[rng.integers(len(kind.brands))]
            variant = variants[rng.integers(len(variants))] if variants else ""
            colour = ""
            if kind.coloured and rng.random() < 0.5:
                colour = _CHINESE_COLOURS[rng.integers(len(_CHINESE_COLOURS))]
            prefix = brand if rng.random() < 0.25 else ""
            blurb = rng.choice(len(kind.blurbs), size=2, replace=False)
            size = f"（{variant}）" if variant else ""
            raw = rng.lognormal(np.log(kind.median_price), kind.price_sigma)
            late = noun in kind.new
            if late:
                first = int(rng.integers(cfg.n_days - RECENT_DAYS, cfg.n_days))
            else:
                first = -int(rng.integers(30, 400))
            records.append(
                {
                    TITLE: " ".join(w for w in (prefix, colour + noun, variant) if w),
                    DESCRIPTION: f"{brand}出品的{colour}{noun}{size}。"
                    f"{kind.blurbs[blurb[0]]}{kind.blurbs[blurb[1]]}",
                    CATEGORY: kind.category,
                    BRAND: brand,
                    PRICE: round(max(np.ceil(raw) - 0.01, 0.99), 2),
                    FIRST_SEEN: (shop.start + timedelta(days=first)).isoformat(),
                    "kind_idx": k,
                    "late": late,
                    "quality": float(np.clip(rng.normal(4.2, 0.4), 2.3, 4.9)),
                }
            )
    df = pd.DataFrame.from_records(records)
    df.insert(0, ITEM_ID, [f"I{cfg.n_items + 2 + j:06d}" for j in range(len(df))])
    return df


def _chinese_rows(
    cfg: SampleConfig,
    shop: _Shop,
    items: pd.DataFrame,
    clean: pd.DataFrame,
    rng: np.random.Generator,
) -> list[tuple]:
    """Shoppers of one kind each: regular users with a history before the last RECENT_DAYS days
    (so none looks like a new user). Shopper j of a kind buys its listed products j and j+1 in one
    session (every listed product sold, same-kind pairs co-bought), then may come back for more of
    the same kind. Rows as in _simulate, item indices into `items`."""
    n_days = cfg.n_days
    base = _day_epoch(shop.start)
    window_end = base + n_days * 86400
    first_epoch = clean.groupby(USER_ID)["epoch"].min()
    users = shop.users
    eligible = np.flatnonzero(
        (users["kind"].to_numpy() == "regular")
        & (
            users[USER_ID].map(first_epoch).fillna(window_end).to_numpy()
            < window_end - RECENT_DAYS * 86400
        )
    )
    listed = [
        np.flatnonzero((items["kind_idx"].to_numpy() == k) & ~items["late"].to_numpy()).tolist()
        for k in range(len(CHINESE_KINDS))
    ]
    n_shoppers = [max(2, len(w)) if w else 0 for w in listed]
    picked = rng.choice(eligible, size=min(sum(n_shoppers), len(eligible)), replace=False)
    shoppers = iter(int(u) for u in picked)
    hours = np.array(_HOUR_WEIGHTS, dtype=float) / sum(_HOUR_WEIGHTS)
    price = items[PRICE].tolist()
    quality = items["quality"].tolist()
    rows: list[tuple] = []

    def session(u: int, day: int, look: list[int], buy: list[int]) -> None:
        hour = int(rng.choice(24, p=hours))
        if day == n_days - 1:
            hour = min(hour, 20)  # sessions on the last day end before midnight
        t = base + day * 86400 + hour * 3600 + int(rng.integers(3600))
        basket = []
        for i in look:
            rows.append((u, i, t, _VIEW, None, None))
            t += int(rng.integers(15, 241))
            if i in buy:
                qty = 1 if rng.random() < 0.75 else int(rng.integers(2, 6))
                t += int(rng.integers(5, 61))
                rows.append((u, i, t, _CART, qty, None))
                basket.append((i, qty))
        t += int(rng.integers(30, 301))
        for i, qty in basket:
            t += int(rng.integers(1, 6))
            rows.append((u, i, t, _PURCHASE, qty, price[i]))
            later = t + int(rng.integers(1, 15)) * 86400 + int(rng.integers(-7200, 7200))
            if rng.random() < 0.3 and later < window_end:
                stars = max(1, min(5, round(rng.normal(quality[i], 0.9))))
                rows.append((u, i, later, _RATING, None, int(stars)))
                if rng.random() < 0.35:
                    rows.append((u, i, later + int(rng.integers(20, 601)), _REVIEW, None, None))

    for warm, n in zip(listed, n_shoppers, strict=True):
        for j in range(n):
            u = next(shoppers, None)
            if u is None:
                break
            lo = max(0, int(users["signup_day"].iat[u]))
            days = sorted(int(d) for d in rng.integers(lo, n_days, size=int(rng.integers(1, 4))))
            pair = list(dict.fromkeys((warm[j % len(warm)], warm[(j + 1) % len(warm)])))
            others = [i for i in warm if i not in pair]
            look = pair + (
                [others[rng.integers(len(others))]] if others and rng.random() < 0.5 else []
            )
            session(u, days[0], [look[x] for x in rng.permutation(len(look))], pair)
            for day in days[1:]:  # back for more of the same kind
                look = [warm[x] for x in rng.permutation(len(warm))[:2]]
                session(u, day, look, [i for i in look if rng.random() < 0.3])
    return [row for row in rows if row[2] < window_end]


# --- business rules (issue 25): availability columns and a rules file -------------------------

SAMPLE_MAX_PER_CATEGORY = 5


def _rule_items(
    cfg: SampleConfig,
    regular: pd.DataFrame,
    clean: pd.DataFrame,
    *dirty: pd.DataFrame,
) -> tuple[list[str], list[str], list[str], list[str]]:
    """(unavailable, sold out, excluded, boosted) item ids, two each: popular regular items, so
    each rule visibly changes lists. A stream of its own: the rest of the shop is unchanged."""
    touched = {str(i) for d in dirty for i in d[ITEM_ID]}
    counts = clean[ITEM_ID].value_counts()
    popular = [i for i in counts.index if i in set(regular[ITEM_ID]) and i not in touched][:40]
    rng = np.random.default_rng([cfg.seed, 25])
    chosen = [str(i) for i in rng.choice(popular, 8, replace=False)]
    return chosen[0:2], chosen[2:4], chosen[4:6], chosen[6:8]


def _with_availability(table: pa.Table, off: list[str], sold_out: list[str]) -> pa.Table:
    """`available` false for off, `stock` 0 for sold_out, 3 in stock for the rest: both spellings
    of "not available" in the landing contract."""
    ids = table.column(ITEM_ID).to_pylist()
    available = [False if i in off else None for i in ids]
    stock = [0 if i in sold_out else 3 for i in ids]
    table = table.append_column(pa.field(AVAILABLE, pa.bool_()), pa.array(available, pa.bool_()))
    return table.append_column(pa.field(STOCK, pa.int64()), pa.array(stock, pa.int64()))


def _write_rules(out: Path, excluded: list[str], boosted: list[str]) -> None:
    rules = {
        "exclude": {"item_ids": excluded},
        "max_per_category": SAMPLE_MAX_PER_CATEGORY,
        "boost": [{"item_id": i, "weight": 0.3} for i in boosted],
    }
    (out / "rules").mkdir(parents=True, exist_ok=True)
    text = "# The sample shop's business rules (README: Business rules).\n" + yaml.safe_dump(
        rules, sort_keys=False
    )
    (out / "rules" / "rules.yaml").write_text(text, encoding="utf-8")


def _replaceable(path: Path) -> bool:
    """Only ever delete a folder that looks like an earlier sample (or is empty)."""
    return path.is_dir() and {p.name for p in path.iterdir()} <= {
        "events",
        "items",
        "users",
        "rules",
        OK_MARKER,
    }


def _config_json(cfg: SampleConfig) -> str:
    return json.dumps(asdict(cfg), sort_keys=True, indent=2) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI; idempotent: a folder whose _SAMPLE_OK holds the same config is left alone."""
    p = argparse.ArgumentParser(
        prog="python -m longtail.sample", description="Write a synthetic shop landing folder."
    )
    d = SampleConfig()
    p.add_argument("--out", required=True, help="landing folder to (re)create")
    p.add_argument("--users", type=int, default=d.n_users)
    p.add_argument("--items", type=int, default=d.n_items)
    p.add_argument("--days", type=int, default=d.n_days)
    p.add_argument("--end-date", default=d.end_date)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--dirty-fraction", type=float, default=d.dirty_fraction)
    args = p.parse_args(argv)
    cfg = SampleConfig(
        n_users=args.users,
        n_items=args.items,
        n_days=args.days,
        end_date=args.end_date,
        seed=args.seed,
        dirty_fraction=args.dirty_fraction,
    )
    try:
        cfg.validate()
    except ValueError as exc:
        p.error(str(exc))
    out = Path(args.out).absolute()
    marker = out / OK_MARKER
    if marker.is_file():
        try:
            same = json.loads(marker.read_text()) == asdict(cfg)
        except ValueError:
            same = False
        if same:
            print(f"{out}: sample already present for this config; nothing to do")
            return 0
    if out.exists() and not _replaceable(out):
        print(
            f"{out}: exists and does not look like a sample folder; refusing to replace it",
            file=sys.stderr,
        )
        return 2
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    trash = out.with_name(f".{out.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    started = time.perf_counter()
    try:
        summary = generate(tmp, cfg)
        if out.exists():
            os.replace(out, trash)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(trash, ignore_errors=True)
    marker.write_text(_config_json(cfg))
    summary["seconds"] = round(time.perf_counter() - started, 2)
    json.dump(summary, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
