"""The synthetic shop: deterministic, in the landing contract, and shaped like a real shop.

Everything downstream (cleaning rules, long-tail metrics, cold-start paths) is tested against this
data, so its properties are asserted here rather than trusted.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from longtail.columns import (
    CATEGORY,
    DESCRIPTION,
    EVENT_TYPE,
    FIRST_SEEN,
    ITEM_ID,
    PRICE,
    QUANTITY,
    TITLE,
    TS,
    USER_ID,
    VALUE,
)
from longtail.sample import (
    DIRTY_KINDS,
    EVENT_COLUMNS,
    OK_MARKER,
    SIGNUP_DATE,
    SampleConfig,
    generate,
    main,
)

SMALL = SampleConfig(n_users=300, n_items=200, n_days=20)
TINY = SampleConfig(n_users=60, n_items=60, n_days=12)
CLEAN_TYPES = ("view", "add_to_cart", "purchase", "rating", "review")
CJK = re.compile(r"[\u4e00-\u9fff]")  # CJK unified ideographs
EPOCH_ZERO = ("0", "1970-01-01T00:00:00Z")


class Shop:
    """A generated landing folder read back with plain pandas, plus a clean-row mask."""

    def __init__(self, out: Path, summary: dict) -> None:
        self.out, self.summary = out, summary
        parts = []
        for path in sorted((out / "events").glob("dt=*/part-0.csv.gz")):
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
            parts.append(df.assign(dt=path.parent.name.removeprefix("dt=")))
        self.events = pd.concat(parts, ignore_index=True)
        self.items = pd.read_parquet(out / "items" / "items.parquet")
        self.late = pd.read_json(
            out / "items" / "late_items.jsonl", lines=True, dtype={FIRST_SEEN: str}
        )
        self.users = pd.read_csv(out / "users" / "users.csv", dtype=str, keep_default_na=False)
        titled = self.items[self.items[TITLE].notna()].drop_duplicates(ITEM_ID)
        self.catalog = titled  # clean catalogue rows of items.parquet (first row wins)
        self.known = set(titled[ITEM_ID]) | set(self.late[ITEM_ID])
        everything = pd.concat([titled, self.late], ignore_index=True)
        self.chinese = everything[everything[TITLE].str.contains(CJK)].reset_index(drop=True)
        self.end = date.fromisoformat(summary["end_date"])

        e = self.events
        qty = pd.to_numeric(e[QUANTITY], errors="coerce")
        self.dirty_masks = {
            "null_user_id": e[USER_ID] == "",
            "null_item_id": e[ITEM_ID] == "",
            "unknown_item": (e[ITEM_ID] != "") & ~e[ITEM_ID].isin(self.known),
            "duplicate": e.duplicated(subset=list(EVENT_COLUMNS)),
            "future_ts": e[TS].str.startswith("2035-"),
            "epoch_zero_ts": e[TS].isin(EPOCH_ZERO),
            "negative_quantity": (e[EVENT_TYPE] == "purchase") & (qty < 0),
            "unparseable_ts": e[TS] == "not-a-date",
            "unknown_event_type": e[EVENT_TYPE] == "click?",
        }
        dirty = np.logical_or.reduce([m.to_numpy() for m in self.dirty_masks.values()])
        bot = (e[USER_ID] == summary["bot_user"]).to_numpy()
        self.clean = e[~dirty & ~bot].copy()
        self.clean["day"] = self.clean[TS].str[:10]
        self.clean[CATEGORY] = self.clean[ITEM_ID].map(self.catalog.set_index(ITEM_ID)[CATEGORY])


def _make(tmp: Path, cfg: SampleConfig) -> Shop:
    return Shop(tmp, generate(tmp, cfg))


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    return _make(tmp_path_factory.mktemp("shop") / "landing", SMALL)


@pytest.fixture(scope="module")
def default_shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Shop, float]:
    """The default config (~90k events): big enough for the long tail to be measurable."""
    out = tmp_path_factory.mktemp("default") / "landing"
    started = time.perf_counter()
    summary = generate(out)
    return Shop(out, summary), time.perf_counter() - started


@pytest.mark.parametrize(
    "bad",
    [
        {"n_users": 5},
        {"n_items": 8},
        {"n_days": 5},
        {"n_categories": 0},
        {"n_categories": 99},
        {"end_date": "2026-02-30"},
        {"end_date": "yesterday"},
        {"dirty_fraction": 1.0},
        {"dirty_fraction": -0.1},
        {"late_item_fraction": 1.5},
        {"new_user_fraction": -0.01},
    ],
)
def test_validate_rejects_nonsense(bad: dict) -> None:
    with pytest.raises(ValueError):
        SampleConfig(**{**SMALL.__dict__, **bad}).validate()
    SMALL.validate()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    generate(tmp_path / "a", TINY)
    generate(tmp_path / "b", TINY)
    generate(tmp_path / "c", SampleConfig(**{**TINY.__dict__, "seed": TINY.seed + 1}))
    a, b, c = (_file_bytes(tmp_path / x) for x in "abc")
    assert a == b
    assert CJK.search(a["items/late_items.jsonl"].decode("utf-8"))  # the Chinese items too
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in ("items/items.parquet", "users/users.csv"))
    assert sum(a[k] != c[k] for k in a if k.startswith("events/")) >= TINY.n_days - 1


def test_layout_follows_the_landing_contract(shop: Shop) -> None:
    files = sorted(str(p.relative_to(shop.out)) for p in shop.out.rglob("*") if p.is_file())
    start = shop.end - timedelta(days=SMALL.n_days - 1)
    days = [(start + timedelta(days=d)).isoformat() for d in range(SMALL.n_days)]
    assert files == sorted(
        [f"events/dt={d}/part-0.csv.gz" for d in days]
        + ["items/items.parquet", "items/late_items.jsonl", "users/users.csv"]
        + ["rules/rules.yaml"]
    )
    raw = (shop.out / "events" / f"dt={days[0]}" / "part-0.csv.gz").read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip mtime 0: no wall-clock time in the output
    header = gzip.decompress(raw).decode().splitlines()[0]
    assert header.split(",") == list(EVENT_COLUMNS)
    assert list(shop.users.columns) == [USER_ID, SIGNUP_DATE, "country"]
    assert {TITLE, DESCRIPTION, CATEGORY, "brand", PRICE, FIRST_SEEN} <= set(shop.items.columns)
    assert shop.summary["start_date"] == days[0] and shop.summary["end_date"] == days[-1]


def test_summary_matches_what_is_read_back(shop: Shop) -> None:
    s = shop.summary
    assert s["events"] == len(shop.events)
    assert s["users"] == len(shop.users) == SMALL.n_users
    assert s["item_rows_parquet"] == len(shop.items)
    late_chinese = int(shop.late[TITLE].str.contains(CJK).sum())
    late = round(SMALL.n_items * SMALL.late_item_fraction) + late_chinese
    assert s["late_items"] == len(shop.late) == late
    assert s["items"] == len(shop.known) == SMALL.n_items + len(shop.chinese)
    assert sorted(s["chinese_items"]) == sorted(shop.chinese[ITEM_ID])
    assert s["bot_events"] == int((shop.events[USER_ID] == s["bot_user"]).sum())
    for kind, mask in shop.dirty_masks.items():
        assert s["dirty_events"][kind] == int(mask.sum()), kind
    assert s["clean_events"] == len(shop.clean)
    assert s["clean_events_by_type"] == shop.clean[EVENT_TYPE].value_counts().to_dict()
    total = s["clean_events"] + s["bot_events"] + sum(s["dirty_events"].values())
    assert total == s["events"]


def test_every_dirty_kind_is_present_and_about_the_right_share(shop: Shop) -> None:
    counts = shop.summary["dirty_events"]
    assert set(counts) == set(DIRTY_KINDS)
    assert min(counts.values()) >= 3
    share = sum(counts.values()) / shop.summary["clean_events"]
    assert 0.5 * SMALL.dirty_fraction <= share <= 2.5 * SMALL.dirty_fraction
    # Dirty catalogue rows: a repeated item_id (twice) and a missing title.
    assert shop.items[ITEM_ID].duplicated().sum() == 2
    assert shop.items[TITLE].isna().sum() == 1


def test_bad_timestamps_land_in_the_last_day_and_good_ones_in_their_own(shop: Shop) -> None:
    e = shop.events
    bad = e[TS].str.startswith("2035-") | e[TS].isin((*EPOCH_ZERO, "not-a-date"))
    assert set(e.loc[bad, "dt"]) == {shop.end.isoformat()}
    good = e[~bad]
    assert (good[TS].str[:10] == good["dt"]).all()
    assert good[TS].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()


def test_one_bot_with_absurd_activity_in_a_single_day(shop: Shop) -> None:
    bot = shop.events[shop.events[USER_ID] == shop.summary["bot_user"]]
    assert shop.summary["bot_user"] in set(shop.users[USER_ID])
    assert bot["dt"].nunique() == 1 and len(bot) >= 1000
    assert set(bot[EVENT_TYPE]) == {"view"}
    per_user_day = shop.clean.groupby([USER_ID, "day"]).size()
    assert len(bot) > 10 * per_user_day.max()


def test_clean_events_reference_known_live_items_and_signed_up_users(shop: Shop) -> None:
    c = shop.clean
    assert set(c[EVENT_TYPE]) == set(CLEAN_TYPES)
    assert c[ITEM_ID].isin(set(shop.catalog[ITEM_ID])).all()
    first_seen = c[ITEM_ID].map(shop.catalog.set_index(ITEM_ID)[FIRST_SEEN])
    assert (first_seen <= c["day"]).all()  # no event before the item existed
    signup = c[USER_ID].map(shop.users.set_index(USER_ID)[SIGNUP_DATE])
    assert signup.notna().all() and (signup <= c["day"]).all()


def test_late_items_are_recent_described_and_untouched(shop: Shop) -> None:
    late = shop.late
    cutoff = (shop.end - timedelta(days=6)).isoformat()
    assert (late[FIRST_SEEN] >= cutoff).all() and (late[FIRST_SEEN] <= shop.end.isoformat()).all()
    assert (late[TITLE].str.len() > 5).all() and (late[DESCRIPTION].str.len() > 20).all()
    assert not set(late[ITEM_ID]) & set(shop.events[ITEM_ID])
    assert not set(late[ITEM_ID]) & set(shop.items[ITEM_ID])
    assert (shop.catalog[FIRST_SEEN] < cutoff).all()


def test_new_users_start_in_the_last_week_with_few_events(shop: Shop) -> None:
    cutoff = (shop.end - timedelta(days=6)).isoformat()
    first = shop.clean.groupby(USER_ID)["day"].min()
    new = first[first >= cutoff].index
    assert len(new) == shop.summary["new_users"] == round(SMALL.n_users * SMALL.new_user_fraction)
    per_user = shop.events[shop.events[USER_ID].isin(new)].groupby(USER_ID).size()
    assert per_user.between(1, 3).all()
    assert per_user.value_counts().index.nunique() >= 2  # not all the same length


def _top_fifth_share(counts: pd.Series) -> float:
    counts = counts.sort_values(ascending=False)
    return float(counts.iloc[: max(1, len(counts) // 5)].sum() / max(1, counts.sum()))


def test_long_tail_of_purchases(default_shop: tuple[Shop, float]) -> None:
    # Thresholds sit between Zipf demand (~0.78, ~0.76) and uniform demand (~0.51, ~0.59).
    shop = default_shop[0]
    bought = shop.clean[shop.clean[EVENT_TYPE] == "purchase"][ITEM_ID].value_counts()
    per_item = bought.reindex(shop.catalog[ITEM_ID], fill_value=0)
    assert _top_fifth_share(per_item) > 0.65
    assert (per_item <= 2).mean() >= 0.65
    assert (per_item > 0).mean() >= 0.3  # a tail, not just a head
    assert per_item.max() < 0.1 * per_item.sum()  # no single item is the whole shop


def test_popularity_is_skewed_within_each_category(shop: Shop) -> None:
    """Separates item-level Zipf from uneven category demand (uniform items give ~0.27)."""
    views = shop.clean[shop.clean[EVENT_TYPE] == "view"]
    per_item = views.groupby([CATEGORY, ITEM_ID]).size()
    index = pd.MultiIndex.from_frame(shop.catalog[[CATEGORY, ITEM_ID]])
    per_item = per_item.reindex(index, fill_value=0)
    shares = per_item.groupby(level=CATEGORY).apply(_top_fifth_share)
    assert shares.mean() > 0.35


def test_activity_is_heavy_tailed(shop: Shop) -> None:
    per_user = shop.clean.groupby(USER_ID).size()
    assert per_user.max() >= 8 * per_user.median()
    assert (per_user <= per_user.mean()).mean() > 0.6  # most users are below average


def test_event_mix_funnel_and_values(shop: Shop) -> None:
    c = shop.clean
    n = c[EVENT_TYPE].value_counts()
    assert n["view"] > 3 * n["add_to_cart"] > 0
    assert n["add_to_cart"] > n["purchase"] > n["rating"] > n["review"] > 0
    buys = c[c[EVENT_TYPE] == "purchase"]
    assert pd.to_numeric(buys[QUANTITY]).between(1, 5).all()
    price = buys[ITEM_ID].map(shop.catalog.set_index(ITEM_ID)[PRICE])
    assert np.allclose(pd.to_numeric(buys[VALUE]), price)
    stars = pd.to_numeric(c.loc[c[EVENT_TYPE] == "rating", VALUE])
    assert stars.between(1, 5).all() and (stars == stars.round()).all()
    assert stars.mean() > 3.0  # shoppers rate what they bought mostly well
    # Every purchase follows a view of the same item by the same user.
    views = c[c[EVENT_TYPE] == "view"].groupby([USER_ID, ITEM_ID])[TS].min()
    first_view = pd.MultiIndex.from_frame(buys[[USER_ID, ITEM_ID]]).map(views.get)
    assert all(isinstance(v, str) and v < t for v, t in zip(first_view, buys[TS], strict=True))


def test_users_concentrate_on_their_favourite_categories(shop: Shop) -> None:
    c = shop.clean
    favourite = (
        c[c[EVENT_TYPE] == "view"]
        .groupby(USER_ID)[CATEGORY]
        .agg(lambda s: s.value_counts().index[0])
    )
    buys = c[(c[EVENT_TYPE] == "purchase") & c[USER_ID].isin(favourite.index)]
    in_fav = (buys[CATEGORY] == buys[USER_ID].map(favourite)).mean()
    # What the same purchases would give if users bought like the shop as a whole.
    global_share = c[CATEGORY].value_counts(normalize=True)
    expected = buys[USER_ID].map(favourite).map(global_share).mean()
    assert len(buys) >= 50
    assert in_fav > 0.5 and in_fav > 3 * expected

    # Views: a user's top category share beats the same events with categories shuffled.
    def top_share(df: pd.DataFrame) -> float:
        g = df.groupby(USER_ID)[CATEGORY]
        sizes = g.size()
        top = g.agg(lambda s: s.value_counts().iloc[0])
        keep = sizes >= 5
        return float((top[keep] / sizes[keep]).mean())

    views = c[c[EVENT_TYPE] == "view"]
    shuffled = views.assign(
        **{CATEGORY: np.random.default_rng(0).permutation(views[CATEGORY].to_numpy())}
    )
    assert top_share(views) > top_share(shuffled) + 0.25


def test_item_text_carries_the_category(shop: Shop) -> None:
    """A naive Bayes on title+description words, trained on half the items, gets the rest right.

    English words only: the Chinese-titled items are checked by character below."""
    english = shop.catalog[~shop.catalog[ITEM_ID].isin(set(shop.chinese[ITEM_ID]))]
    items = english.sample(frac=1.0, random_state=0)
    words = (items[TITLE] + " " + items[DESCRIPTION]).str.lower().str.findall(r"[a-z]+")
    half = len(items) // 2
    counts: dict[str, Counter] = {}
    for cat, toks in zip(items[CATEGORY][:half], words[:half], strict=True):
        counts.setdefault(cat, Counter()).update(toks)
    vocab = set().union(*counts.values())

    def predict(toks: list[str]) -> str:
        def score(cat: str) -> float:
            cnt, total = counts[cat], sum(counts[cat].values())
            return sum(math.log((cnt[t] + 1) / (total + len(vocab))) for t in toks if t in vocab)

        return max(counts, key=score)

    hits = [predict(t) == cat for cat, t in zip(items[CATEGORY][half:], words[half:], strict=True)]
    assert np.mean(hits) > 0.9
    medians = shop.catalog.groupby(CATEGORY)[PRICE].median()
    assert medians.max() > 2 * medians.min()  # prices differ by category


def test_default_config_size_and_speed(default_shop: tuple[Shop, float]) -> None:
    shop, elapsed = default_shop
    summary = shop.summary
    assert 60_000 <= summary["events"] == len(shop.events) <= 120_000
    assert summary["users"] == 3000 and summary["items"] == 2000 + len(shop.chinese) == 2012
    assert elapsed < 30  # ~1-2 s on a laptop; generous for slow CI


def test_generate_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError):
        generate(tmp_path, TINY)
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_cli_is_idempotent_and_replaces_on_new_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "landing"
    args = ["--out", str(out), "--users", "60", "--items", "60", "--days", "12"]
    assert main(args) == 0
    marker = json.loads((out / OK_MARKER).read_text())
    assert marker == {**TINY.__dict__}
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    capsys.readouterr()

    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamp

    before = (out / "users" / "users.csv").read_bytes()
    assert main([*args, "--seed", "8"]) == 0
    assert json.loads((out / OK_MARKER).read_text())["seed"] == 8
    assert (out / "users" / "users.csv").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landing"]  # no temp dirs left behind


def test_cli_will_not_replace_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a sample")
    assert main(["--out", str(tmp_path), "--users", "60", "--items", "60", "--days", "12"]) == 2
    assert (tmp_path / "notes.txt").read_text() == "not a sample"


def test_cli_rejects_a_bad_config(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "x"), "--users", "3"])
    assert exc.value.code == 2
    assert not (tmp_path / "x").exists()


def test_business_rules_unavailable_popular_items_and_a_valid_rules_file(shop: Shop) -> None:
    from longtail.rules import parse

    items = shop.items.drop_duplicates(ITEM_ID).set_index(ITEM_ID)
    off = set(items.index[items["available"].eq(False)])  # nulls mean "not said"
    sold_out = set(items.index[items["stock"] == 0])
    assert len(off) == len(sold_out) == 2 and not off & sold_out
    assert sorted(off | sold_out) == shop.summary["unavailable_items"]
    bought = shop.clean[ITEM_ID].value_counts()
    assert all(bought.get(i, 0) > 0 for i in off | sold_out)  # they have history to recommend
    path = shop.out / "rules" / "rules.yaml"
    rules = parse(path.read_text(), str(path))
    assert rules.max_per_category == 5 and len(rules.boost) == 2
    assert sorted(rules.exclude.item_ids) == shop.summary["excluded_items"]
    assert not set(rules.exclude.item_ids) & (off | sold_out)


def _bigrams(text: str) -> set[str]:
    chars = "".join(CJK.findall(text))
    return {chars[j : j + 2] for j in range(len(chars) - 1)}


def test_chinese_items_of_a_few_kinds_with_chinese_text(shop: Shop) -> None:
    zh = shop.chinese
    assert 10 <= len(zh) <= 15
    assert zh[DESCRIPTION].str.contains(CJK).all() and (zh[DESCRIPTION].str.len() > 20).all()
    assert zh[CATEGORY].str.contains(CJK).all()
    kinds = zh[CATEGORY].value_counts()
    assert 2 <= len(kinds) <= 4 and kinds.min() >= 3
    assert not set(zh[CATEGORY]) & set(
        shop.catalog.loc[~shop.catalog[TITLE].str.contains(CJK), CATEGORY]
    )
    # Same-kind titles share characters: each item's nearest other Chinese item by character
    # bigrams (Jaccard over title and category) is of its own kind.
    grams = [_bigrams(f"{t} {c}") for t, c in zip(zh[TITLE], zh[CATEGORY], strict=True)]
    for a, ga in enumerate(grams):
        sims = [len(ga & gb) / len(ga | gb) if b != a else -1.0 for b, gb in enumerate(grams)]
        assert zh[CATEGORY][int(np.argmax(sims))] == zh[CATEGORY][a], zh[TITLE][a]


def test_chinese_items_have_history_and_a_few_are_brand_new(shop: Shop) -> None:
    zh = shop.chinese
    c = shop.clean
    day = c["day"]
    last = shop.end.isoformat()
    cutoff = (shop.end - timedelta(days=6)).isoformat()
    bought = set(c.loc[c[EVENT_TYPE] == "purchase", ITEM_ID])
    new = zh[zh[FIRST_SEEN] >= cutoff]
    assert 2 <= len(new) <= 4 and (new[FIRST_SEEN] <= last).all()
    sold_early = set(c.loc[(c[EVENT_TYPE] == "purchase") & (day < last), ITEM_ID])
    assert not set(new[ITEM_ID]) & sold_early  # cold: never sold before the last day
    assert not set(new[ITEM_ID]) & set(shop.events[ITEM_ID])  # and no events at all
    assert set(new[ITEM_ID]) <= set(shop.late[ITEM_ID])
    assert set(shop.summary["new_chinese_items"]) == set(new[ITEM_ID])
    listed = zh[zh[FIRST_SEEN] < cutoff]
    assert listed[ITEM_ID].isin(bought).all()  # every other one has sold
    assert len(listed) >= 2 * len(new)
    # Each kind's brand-new item has an older sibling of its kind to be recommended beside.
    assert set(new[CATEGORY]) <= set(listed[CATEGORY])


def test_chinese_shoppers_buy_within_a_kind(shop: Shop) -> None:
    kind = shop.chinese.set_index(ITEM_ID)[CATEGORY]
    c = shop.clean
    buys = c[(c[EVENT_TYPE] == "purchase") & c[ITEM_ID].isin(kind.index)]
    per_user = buys.assign(kind=buys[ITEM_ID].map(kind)).groupby(USER_ID)
    assert 3 <= per_user.ngroups <= 20  # a few shoppers
    assert (per_user["kind"].nunique() == 1).all()  # each sticks to one kind
    items_per_user = per_user[ITEM_ID].nunique()
    co_bought = set(per_user["kind"].first()[items_per_user >= 2])
    listed_kinds = set(kind[kind.index.isin(set(buys[ITEM_ID]))])
    assert co_bought == listed_kinds  # in every kind, some shopper bought two of its items
    # They are ordinary shoppers with a history of their own, not accounts made for the purpose.
    english = set(c.loc[~c[ITEM_ID].isin(kind.index), USER_ID])
    assert set(buys[USER_ID]) <= english


def test_the_chinese_items_leave_the_rest_of_the_shop_as_it_was(tmp_path: Path) -> None:
    """They come from a stream of their own: without them every other byte is the same."""
    zh = set(Shop(tmp_path / "with", generate(tmp_path / "with", TINY)).chinese[ITEM_ID])
    assert zh
    generate(tmp_path / "without", SampleConfig(**{**TINY.__dict__, "chinese_items": False}))
    with_, without = _file_bytes(tmp_path / "with"), _file_bytes(tmp_path / "without")
    assert with_.keys() == without.keys()
    for name, data in without.items():
        if name.startswith("events/"):
            lines = gzip.decompress(with_[name]).decode("utf-8").splitlines()
            kept = [line for line in lines if line.split(",")[1] not in zh]
            assert "\n".join(kept) + "\n" == gzip.decompress(data).decode("utf-8"), name
        elif name == "items/items.parquet":
            a = pd.read_parquet(tmp_path / "without" / name)
            b = pd.read_parquet(tmp_path / "with" / name)
            assert b.iloc[: len(a)].equals(a) and set(b[ITEM_ID].iloc[len(a) :]) <= zh
        elif name == "items/late_items.jsonl":
            assert with_[name].startswith(data)
        else:
            assert with_[name] == data, name
