"""The shop's business rules on hand-computed cases: parsing and its errors, caps, exclusions and
boosts in the final list and the popularity fill, availability across dt= snapshots, the gate."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.unit.test_fusion import space

from longtail import columns as C
from longtail import fusion
from longtail import rules as R
from longtail.retrieval import VectorIndex
from longtail.stages.fusion_inputs import restrict
from longtail.stages.score import fill_lists, popular_order
from longtail.stages.similar_items import SIMILAR_ITEM_ID, similar_block

GOOD = """\
exclude:
  item_ids: [I1, 42]
  categories: [Gift cards]
  brands: [Acme]
max_per_category: 5
max_per_brand: 3
boost:
  - item_id: I7
    weight: 0.5
"""
# The tiny space of test_fusion: items a..f, categories [0, 0, 1, 1, 1, 0], tail [c, d, e, f].
CATEGORY_CAP_2 = R.ItemRules(caps=((np.array([0, 0, 1, 1, 1, 0], np.int64), 2),))


def test_a_full_rules_file_parses_to_its_values() -> None:
    r = R.parse(GOOD, "landing/rules/rules.yaml")
    assert r.exclude.item_ids == ("I1", "42")  # a bare number is the same id as text
    assert r.exclude.categories == ("Gift cards",) and r.exclude.brands == ("Acme",)
    assert (r.max_per_category, r.max_per_brand) == (5, 3)
    assert [(b.item_id, b.weight) for b in r.boost] == [("I7", 0.5)]
    assert R.parse("{}", "r.json") == R.Rules()
    assert r.fingerprint() == R.Rules.model_validate(r.to_record()).fingerprint()
    assert r.fingerprint() != R.Rules().fingerprint()


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("rules.yaml", "exclude:\n  item_ids: [a]\n  brandz: [b]\n", "line 3: exclude.brandz"),
        ("rules.yaml", "max_per_category: 5\nmax_per_brand: 0\n", "line 2: max_per_brand"),
        ("rules.yaml", "max_per_category: true\n", "line 1: max_per_category"),
        ("rules.yaml", "max_per_category: '5'\n", "line 1: max_per_category"),
        (
            "rules.yaml",
            "boost:\n  - item_id: a\n    weight: 0.5\n  - item_id: b\n    weight: 1.5\n",
            "line 5: boost[1].weight",
        ),
        ("rules.yaml", "boost:\n  - {item_id: a, weight: 0}\n", "line 2: boost[0].weight"),
        (
            "rules.yaml",
            "boost:\n  - {item_id: a, weight: 0.2}\n  - {item_id: a, weight: 0.3}\n",
            "line 2: boost: item_id 'a' is boosted more than once",
        ),
        ("rules.yaml", "max_per_category: 2\nmax_per_category: 3\n", "line 2: max_per_category"),
        ("rules.yaml", "exclude:\n  item_ids: [a\n", "line 3: not valid YAML"),
        ("rules.yaml", "- a\n", "line 1: expected a mapping"),
        ("rules.yaml", "", "got an empty file"),
        (
            "rules.json",
            '{"max_per_brand": 2,\n "exclude": {"categories": [""]}}',
            "line 2: exclude.categories[0]",
        ),
        ("rules.json", '{"max_per_brand": 2,,\n}', "line 1: not valid JSON"),
    ],
)
def test_a_bad_rules_file_names_the_file_line_and_key(name: str, text: str, expected: str) -> None:
    path = f"/landing/rules/{name}"
    with pytest.raises(R.RulesError) as err:
        R.parse(text, path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


def test_boost_adds_weight_times_the_users_score_spread() -> None:
    got = R.boosted(np.array([6.0, 5.0, 1.0]), np.array([0.0, 0.0, 0.5]))
    np.testing.assert_allclose(got, [6.0, 5.0, 3.5])  # 1 + 0.5 x (6 - 1)
    np.testing.assert_allclose(R.boosted(np.array([2.0, 0.0]), np.array([1.0, 1.0])), [4.0, 2.0])


def test_caps_keep_the_best_of_each_group_in_score_order() -> None:
    scores = np.array([1.0, 5.0, 4.0, 3.0, 5.0, 2.0])
    category = np.array([0, 0, 0, 1, 1, -1])  # -1: no category, never capped
    brand = np.array([7, 8, 8, 8, 9, 8])
    # score order (ties: lower position): 1, 4, 2, 3, 5, 0; category cap 2, brand cap 2:
    # 1 (c0:1, b8:1), 4 (c1:1, b9:1), 2 (c0:2, b8:2), 3 brand 8 full, 5 brand 8 full, 0 c0 full
    assert R.within_caps(scores, [category, brand], [2, 2]).tolist() == [1, 2, 4]
    assert R.within_caps(scores, [category], [1]).tolist() == [1, 4, 5]


def _greedy_caps(scores: np.ndarray, groups: list[np.ndarray], caps: list[int]) -> list[int]:
    """The rule as written: walk the candidates best first, keep one when every capped group it
    is in holds fewer than its cap."""
    walk = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    held: list[dict[int, int]] = [{} for _ in caps]
    kept = []
    for i in walk:
        mine = [int(g[i]) for g in groups]
        if all(c < 0 or held[k].get(c, 0) < caps[k] for k, c in enumerate(mine)):
            for k, c in enumerate(mine):
                if c >= 0:
                    held[k][c] = held[k].get(c, 0) + 1
            kept.append(i)
    return sorted(kept)


@pytest.mark.parametrize("n_caps", [1, 2, 3])
def test_caps_equal_the_greedy_walk_on_random_candidates(n_caps: int) -> None:
    rng = np.random.default_rng(n_caps)
    for _ in range(200):
        n = int(rng.integers(0, 60))
        scores = rng.integers(0, 8, n).astype(float)  # many ties
        groups = [rng.integers(-1, int(rng.integers(1, 6)), n) for _ in range(n_caps)]
        caps = [int(c) for c in rng.integers(1, 4, n_caps)]
        got = R.within_caps(scores, groups, caps)
        assert got.dtype == np.int64
        assert got.tolist() == _greedy_caps(scores, groups, caps)


@pytest.mark.parametrize("n_caps", [1, 2])
def test_caps_and_boosts_of_a_block_of_users_equal_each_user_alone(n_caps: int) -> None:
    rng = np.random.default_rng(10 + n_caps)
    for _ in range(50):
        sizes = rng.integers(1, 25, int(rng.integers(1, 8)))
        lists = np.repeat(np.arange(len(sizes)), sizes)
        n = len(lists)
        scores = rng.integers(0, 6, n).astype(float) + rng.choice([0.0, 0.5], n)
        groups = [rng.integers(-1, 4, n) for _ in range(n_caps)]
        caps = [int(c) for c in rng.integers(1, 3, n_caps)]
        weights = rng.choice([0.0, 0.0, 0.3, 1.0], n)
        expected_kept, expected_boost = [], []
        for user, a in enumerate(np.r_[0, np.cumsum(sizes)[:-1]]):
            b = a + sizes[user]
            one = R.boosted(scores[a:b], weights[a:b])
            expected_boost.append(one)
            kept = _greedy_caps(one, [g[a:b] for g in groups], caps)
            expected_kept += [a + i for i in kept]
        boosted = R.boosted(scores, weights, lists)
        np.testing.assert_array_equal(boosted, np.concatenate(expected_boost))  # bit for bit
        assert R.within_caps(boosted, groups, caps, lists).tolist() == expected_kept


def _one_user(scores: list[float]) -> pd.DataFrame:
    return pd.DataFrame({C.USER_ID: "u1", "item_idx": np.arange(6), C.SOURCE: "als"}), np.array(
        scores
    )


def test_final_list_with_a_cap_and_a_boost_by_hand() -> None:
    cands, scores = _one_user([6, 5, 4, 1, 3, 2])  # items a..f
    plain = fusion.final_lists(cands, scores, space(), 5, 0.5)
    # tail quota 0.5: floor(2.5) = 2 tail items by rank 5, and score order already holds them:
    # a, b, c (tail), e (tail), f
    assert plain[C.ITEM_ID].tolist() == ["a", "b", "c", "e", "f"]
    # quota 0.8: floor(4.0) = 4 tail items by rank 5: a keeps rank 1, then c, e, f, d
    strict = fusion.final_lists(cands, scores, space(), 5, 0.8)
    assert strict[C.ITEM_ID].tolist() == ["a", "c", "e", "f", "d"]
    boost = np.array([0, 0, 0, 0.5, 0, 0])
    ruled = space(rules=R.ItemRules(caps=CATEGORY_CAP_2.caps, boost=boost))
    got = fusion.final_lists(cands, scores, ruled, 5, 0.5)
    # d boosted to 1 + 0.5 x 5 = 3.5; caps in boosted order keep a, b (cat 0), c, d (cat 1);
    # e and f are over their category's cap: four items, the fill tops the list up
    assert got[C.ITEM_ID].tolist() == ["a", "b", "c", "d"]
    assert got[C.SCORE].tolist() == [6.0, 5.0, 4.0, 3.5]


def test_popularity_fill_skips_unavailable_items_and_holds_the_caps() -> None:
    sp = space(allowed=np.array([0, 1, 1, 1, 1, 1], bool), rules=CATEGORY_CAP_2)
    order = popular_order(sp)
    assert sp.item_ids[order].tolist() == ["b", "c", "d", "e", "f"]  # a is unavailable
    lists = pd.DataFrame(
        {
            C.USER_ID: ["u1"],
            C.RANK: np.array([1], np.int32),
            C.ITEM_ID: ["c"],
            C.SCORE: [0.5],
            C.SOURCE: ["als"],
            C.IS_LONG_TAIL: [True],
        }
    )
    users = pd.DataFrame({C.USER_ID: ["u1", "u2"], fusion.EXCLUDED: [["b"], []]})
    out = fill_lists(lists, users, sp, order, 4)
    u1, u2 = (out[out[C.USER_ID] == u] for u in ("u1", "u2"))
    # u1: b owned, c listed, d (category 1: 2nd), e over the cap, f: short of 4 on purpose
    assert u1[C.ITEM_ID].tolist() == ["c", "d", "f"]
    assert u1[C.SCORE].tolist() == [0.5, -1.0, -2.0]
    assert u2[C.ITEM_ID].tolist() == ["b", "c", "d", "f"]
    np.testing.assert_allclose(u2[C.SCORE], np.log1p([10, 10, 2, 0]), rtol=1e-6)


def test_popularity_fill_leaves_full_lists_as_they_are() -> None:
    sp = space()
    full = pd.DataFrame(
        {
            C.USER_ID: ["u1"] * 3 + ["u2"],
            C.RANK: np.array([1, 2, 3, 1], np.int32),
            C.ITEM_ID: ["f", "e", "d", "a"],
            C.SCORE: [3.0, 2.0, 1.0, 0.25],
            C.SOURCE: ["als"] * 4,
            C.IS_LONG_TAIL: [True] * 4,
        }
    )
    users = pd.DataFrame({C.USER_ID: ["u2", "u1"], fusion.EXCLUDED: [[], []]})
    out = fill_lists(full, users, sp, popular_order(sp), 3)
    pd.testing.assert_frame_equal(out.iloc[:4], full)  # u1's full list: not a row added
    u2 = out[out[C.USER_ID] == "u2"]
    assert u2[C.ITEM_ID].tolist() == ["a", "b", "c"]  # continued with the most popular
    assert u2[C.SCORE].tolist() == [0.25, -1.0, -2.0]
    assert len(out) == 6


def test_restrict_marks_unavailable_and_excluded_items() -> None:
    cat = pd.DataFrame(
        {
            C.ITEM_ID: ["f", "e", "d", "c", "b", "a"],  # any order: aligned to the space
            C.CATEGORY: [None, "games", "toys", "games", "books", "books"],
            C.BRAND: ["y", "acme", "y", "x", "x", None],
            C.AVAILABLE: [True, True, True, True, False, True],
        }
    )
    rules = R.Rules.model_validate(
        {
            "exclude": {"item_ids": ["c"], "categories": ["toys"], "brands": ["acme"]},
            "max_per_brand": 1,
        }
    )
    got = restrict(space(), cat, rules)
    assert got.allowed.tolist() == [True, False, False, False, False, True]
    ((codes, cap),) = got.rules.caps
    assert codes.tolist() == [-1, 1, 1, 2, 0, 2] and cap == 1  # acme, x, y; a has no brand
    untouched = restrict(space(), cat.assign(**{C.AVAILABLE: True}), None)
    assert untouched.allowed is None and untouched.rules is None


def test_similar_items_never_offer_an_item_that_may_not_be_shown() -> None:
    def neighbours_of_a(sp: fusion.ItemSpace) -> list[str]:
        ok = np.abs(sp.embeddings).sum(axis=1) > 0
        ok = ok if sp.allowed is None else ok & sp.allowed
        got = similar_block(
            np.array([0]), sp, 3, 1.0, VectorIndex.build(sp.embeddings, np.flatnonzero(ok))
        )
        return got[SIMILAR_ITEM_ID].tolist()

    # a at 0 deg: f (5 deg), b (10), c (90, co-occurs 0.9), d (95)
    assert neighbours_of_a(space()) == ["f", "b", "c"]
    assert neighbours_of_a(space(allowed=np.array([1, 0, 1, 1, 1, 1], bool))) == ["f", "c", "d"]


def test_availability_snapshots_ingest_and_the_rules_gate(spark: Any, tmp_path: Path) -> None:
    """The one Spark test: the availability columns typed, the newest snapshot on or before DS,
    the rules check before ingest writes, and the recommendations gate on a table that breaks
    the rules."""
    from pyspark.sql import functions as F

    from longtail import landing
    from longtail.cleaning import item_availability
    from longtail.config import CleanConfig, IngestConfig
    from longtail.gates import GateFailed, gate_recommendations
    from longtail.stages import ingest

    def file(day: str | None) -> str:
        return f"file:/l/items/{'' if day is None else f'dt={day}/'}part.csv"

    rows = [  # item, reason, file, available, stock
        ("a", None, file(None), False, None),
        ("a", "duplicate_item", file("2026-01-02"), True, None),  # a re-send counts
        ("b", None, file("2026-01-01"), None, 5.0),
        ("b", "duplicate_item", file("2026-01-03"), None, 0.0),  # sold out on DS
        ("c", None, file("2026-01-02"), None, 0.0),
        ("c", "duplicate_item", file("2026-01-05"), True, 9.0),  # after DS: not seen yet
        ("d", None, file(None), None, None),
        ("e", None, file("2026-01-01"), True, None),
        ("e", "invalid_availability", file("2026-01-03"), None, None),  # unusable row
    ]
    items = spark.createDataFrame(
        rows, "item_id string, reason string, source_file string, available boolean, stock double"
    )
    raw = spark.createDataFrame(
        [
            (i, "T", a, st)
            for i, a, st in [
                ("p", " No ", None),
                ("q", "maybe", "2"),
                ("r", None, "abc"),
                ("s", "1", "0"),
            ]
        ],
        "item_id string, title string, available string, stock string",
    )
    for name in (*C.ITEMS_OPTIONAL, "_corrupt_record", C.SOURCE_FILE):
        if name not in raw.columns:
            raw = raw.withColumn(name, F.lit(None).cast("string"))
    typed = {r[C.ITEM_ID]: r for r in landing.type_items(raw).collect()}
    assert (typed["p"][C.AVAILABLE], typed["p"]["parse_error"]) == (False, None)
    assert typed["q"]["parse_error"] == typed["r"]["parse_error"] == "invalid_availability"
    assert (typed["s"][C.AVAILABLE], typed["s"][C.STOCK]) == (True, 0.0)

    cfg = CleanConfig(ds=date(2026, 1, 3), warehouse=str(tmp_path / "wh"))
    got = {r[C.ITEM_ID]: r[C.AVAILABLE] for r in item_availability(items, cfg).collect()}
    assert got == {"a": True, "b": False, "c": False, "d": True, "e": True}

    landing = tmp_path / "landing"
    (landing / "rules").mkdir(parents=True)
    (landing / "rules" / "rules.yaml").write_text("max_per_category: 2\nboost: 3\n")
    with pytest.raises(R.RulesError, match=r"rules\.yaml: line 2: boost"):
        ingest.run(
            spark,
            IngestConfig(ds="2026-01-03", warehouse=str(tmp_path / "wh"), landing=str(landing)),
        )
    assert not (tmp_path / "wh").exists()  # stopped before anything was written

    catalogue = spark.createDataFrame(
        [("a", "toys", True), ("b", "toys", False), ("c", "toys", True), ("d", "games", True)],
        "item_id string, category string, available boolean",
    )
    schema = (
        "user_id string, rank int, item_id string, score double, source string,"
        " model_version string, is_long_tail boolean, reason_item_id string, reason string"
    )
    rules = R.Rules(max_per_category=1)

    def recs(lists: dict[str, list[str]]) -> Any:
        rows = [
            (u, r + 1, i, 1.0 - r, "als", "v", False, None, None)
            for u, items in lists.items()
            for r, i in enumerate(items)
        ]
        return spark.createDataFrame(rows, schema)

    gate_recommendations(
        recs({"u1": ["a", "d"], "u2": ["c", "d"]}), 2, 2, ["als"], catalogue, rules
    )
    with pytest.raises(GateFailed) as err:  # b is unavailable; u2 has two toys
        gate_recommendations(
            recs({"u1": ["b", "d"], "u2": ["a", "c"]}), 2, 2, ["als"], catalogue, rules
        )
    assert "_allowed" in str(err.value) and "_per_category" in str(err.value)
