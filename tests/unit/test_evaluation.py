"""One definition each: the evaluation metrics in pandas and Spark agree, and NDCG, the head/tail
split and the new-pair rule hold on hand-made cases (`longtail.evaluation`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from longtail import fusion, ranker
from longtail.evaluation import HEAD_SHARE, ranking, split
from longtail.evaluation import spark as spark_eval

PAIR = "user_id string, item_id string"
RECS = "user_id string, rank int, item_id string"


def _pairs(truth: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((u, i) for u, items in truth.items() for i in items)


# --- NDCG by hand -------------------------------------------------------------------------------


def test_ndcg_by_hand() -> None:
    # u1: hits at positions 0 and 2 of 3 truth items -> (1 + 1/2) / (1 + 1/log2(3) + 1/2)
    # u2: its only truth item at position 1 -> (1/log2(3)) / 1; u3: no list, one truth item -> 0
    recs = {"u1": ["a", "x", "b", "y"], "u2": ["x", "c"]}
    truth = {"u1": {"a", "b", "z"}, "u2": {"c"}, "u3": {"a"}}
    u1 = (1 + 1 / 2) / (1 + 1 / math.log2(3) + 1 / 2)
    u2 = 1 / math.log2(3)
    assert ranking.ndcg_at_k(recs, truth, 10) == pytest.approx((u1 + u2 + 0) / 3, abs=1e-15)
    # at k = 2, u1's second hit is cut and its ideal holds 2 hits
    u1_at_2 = 1 / (1 + 1 / math.log2(3))
    assert ranking.ndcg_at_k(recs, truth, 2) == pytest.approx((u1_at_2 + u2) / 3, abs=1e-15)
    ideal = [1.0, 1 + 1 / math.log2(3), 1 + 1 / math.log2(3) + 1 / 2]
    assert ranking.ideal_dcg(3).tolist() == pytest.approx(ideal, abs=1e-15)


def test_ndcg_grouped_by_hand() -> None:
    # Group 0 ranks rows by score: row 1 (0.9, relevant), row 0 (0.5), row 2 (0.5, relevant: a tie
    # keeps row order) -> hits at positions 0 and 2. Group 1 has no relevant row: 0, counted.
    scores = np.array([0.5, 0.9, 0.5, 0.3, 0.1])
    labels = np.array([0, 1, 1, 0, 0])
    want = ((1 + 1 / 2) / (1 + 1 / math.log2(3)) + 0.0) / 2
    assert ranking.ndcg_grouped(scores, labels, np.array([3, 2]), 10) == pytest.approx(want)
    assert math.isnan(ranking.ndcg_grouped(np.array([]), np.array([]), np.array([], int)))
    blocks = ranking.ndcg_grouped_blocks(scores, labels, np.array([3, 2]), 10)
    assert blocks.tolist() == pytest.approx([(1 + 1 / 2) / (1 + 1 / math.log2(3)), 0.0])


def _ndcg_at_10_before(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    """The ranker's own validation NDCG before it used the evaluation one (kept to compare)."""
    out, start = [], 0
    for g in groups:
        s, y = scores[start : start + g], labels[start : start + g]
        start += g
        order = np.lexsort((np.arange(len(s)), -s))[:10]
        gains = y[order] / np.log2(np.arange(2, len(order) + 2))
        ideal = np.sort(y)[::-1][:10] / np.log2(np.arange(2, min(10, len(y)) + 2))
        out.append(gains.sum() / ideal.sum() if ideal.sum() > 0 else 0.0)
    return float(np.mean(out)) if out else float("nan")


@pytest.mark.parametrize("seed", range(6))
def test_ranker_validation_ndcg_is_the_one_it_had(seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups = rng.integers(1, 40, size=rng.integers(1, 80))
    n = int(groups.sum())
    scores = rng.random(n)
    if seed % 2:
        scores = np.round(scores, 1)  # many ties: row order decides
    labels = (rng.random(n) < rng.uniform(0.02, 0.5)).astype(np.int32)
    got = ranking.ndcg_grouped(scores, labels, groups, 10)
    # the same value; the sums run in another order, so the last bit may differ
    assert got == pytest.approx(_ndcg_at_10_before(scores, labels, groups), rel=1e-12, abs=0)


def test_grouped_ndcg_equals_the_list_form() -> None:
    # every group with a relevant row: grouped form == ndcg_at_k of the same lists and truth
    rng = np.random.default_rng(7)
    groups = rng.integers(2, 30, size=25)
    scores = rng.random(int(groups.sum()))
    labels = (rng.random(len(scores)) < 0.3).astype(int)
    block = np.repeat(np.arange(len(groups)), groups)
    labels[np.cumsum(groups) - 1] = 1
    recs, truth = {}, {}
    for g in range(len(groups)):
        rows = np.flatnonzero(block == g)
        recs[g] = [int(r) for r in rows[np.lexsort((rows, -scores[rows]))]]
        truth[g] = {int(r) for r in rows if labels[r]}
    want = ranking.ndcg_at_k(recs, truth, 10)
    assert ranking.ndcg_grouped(scores, labels, groups, 10) == pytest.approx(want, abs=1e-15)


# --- the head/tail split by hand ----------------------------------------------------------------


def test_head_tail_split_by_hand() -> None:
    # 90 catalogue interactions (zz is not listed: ignored); 80% = 72: a 50 + b 20 = 70 < 72,
    # + c 10 = 80 -> head {a, b, c}. c and d tie on 10: c comes first by id. e, f (never
    # interacted) are tail.
    counts = {"a": 50, "b": 20, "d": 10, "c": 10, "zz": 100}
    catalogue = ["f", "e", "d", "c", "b", "a"]
    assert HEAD_SHARE == 0.8
    head, tail = split.head_tail_split(counts, catalogue)
    assert head == {"a", "b", "c"} and tail == {"d", "e", "f"}
    # the pipeline's array form (items in id order) is the same split
    ids = sorted(catalogue)
    is_tail = split.head_tail(np.array([counts.get(i, 0) for i in ids], float))
    assert {i for i, t in zip(ids, is_tail, strict=True) if t} == tail
    assert fusion.head_tail is split.head_tail
    # 0.78 -> 70.2: a and b fall short, c is in; 7/9 -> 70: a and b reach it exactly
    assert split.head_tail_split(counts, catalogue, 0.78)[0] == {"a", "b", "c"}
    assert split.head_tail_split(counts, catalogue, 7 / 9)[0] == {"a", "b"}
    # 0.07 * 100 is 7.000000000000001 in floats: the first item's 7 still reaches it
    assert split.n_head(np.array([7.0] + [1.0] * 93), 0.07) == 1
    assert split.n_head(np.zeros(3)) == 0


@pytest.mark.parametrize("seed", range(4))
def test_both_forms_of_the_split_agree(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = [f"i{j:03d}" for j in range(int(rng.integers(1, 80)))]
    counts = rng.zipf(1.4, len(ids)) * (rng.random(len(ids)) < 0.8)
    share = float(rng.choice([0.5, HEAD_SHARE, 0.95, 1.0]))
    _, tail = split.head_tail_split(dict(zip(ids, counts.tolist(), strict=True)), ids, share)
    is_tail = split.head_tail(counts.astype(float), share)
    assert {i for i, t in zip(ids, is_tail, strict=True) if t} == tail


# --- the new-pair rule by hand ------------------------------------------------------------------


BEFORE = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["a", "b", "a"]})
AFTER = pd.DataFrame(
    {
        "user_id": ["u1", "u1", "u2", "u3", "u1", "u2"],
        "item_id": ["a", "c", "b", "a", "c", "a"],
    }
)


def test_new_pair_rule_by_hand() -> None:
    # u1/a and u2/a were there before; u3 has no history; u1/c twice is one pair
    assert split.new_pairs(BEFORE, AFTER) == {"u1": {"c"}, "u2": {"b"}}
    # judged users given (the quality stage: the listed users), history or not
    assert split.new_pairs(BEFORE, AFTER, users={"u2", "u3"}) == {"u2": {"b"}, "u3": {"a"}}
    assert ranker.new_pairs is split.new_pairs


def test_new_pair_rule_in_spark(spark: Any) -> None:
    before = spark.createDataFrame(BEFORE)
    after = spark.createDataFrame(AFTER)
    got = spark_eval.new_pairs(before, after).collect()
    assert sorted(map(tuple, got)) == _pairs(split.new_pairs(BEFORE, AFTER))
    users = spark.createDataFrame([("u2",), ("u3",)], "user_id string")
    got = spark_eval.new_pairs(before, after, users).collect()
    assert sorted(map(tuple, got)) == _pairs(split.new_pairs(BEFORE, AFTER, {"u2", "u3"}))


# --- pandas and Spark agree ---------------------------------------------------------------------


def _random_case(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    items = [f"i{j:02d}" for j in range(40)]
    catalogue = items[:32] + items[:2]  # i32.. are recommended or bought but not listed
    pop = rng.zipf(1.6, size=len(items)).astype(float)
    pop /= pop.sum()
    users = [f"u{j}" for j in range(30)]
    history = [(u, str(i)) for u in users for i in rng.choice(items, size=5, p=pop)]
    recs = []
    for u in users[:24]:
        n = int(rng.integers(1, 26))
        ranks = rng.permutation(n) + 1  # rows out of rank order; repeats of an item allowed
        recs += [(u, int(r), str(rng.choice(items))) for r in ranks]
    # truth users with and without a list, and lists without truth
    truth = [(u, str(i)) for u in users[4:] for i in rng.choice(items, size=rng.integers(0, 9))]
    return {"recs": recs, "history": history, "truth": truth, "catalogue": catalogue}


@pytest.mark.parametrize("seed", [1, 5])
def test_pandas_and_spark_metrics_agree(spark: Any, seed: int) -> None:
    case = _random_case(seed)
    recs_pd = pd.DataFrame(case["recs"], columns=["user_id", "rank", "item_id"])
    lists = ranking.recs_from_frame(recs_pd)
    truth: dict[str, set[str]] = {}
    for u, i in case["truth"]:
        truth.setdefault(u, set()).add(i)
    history = pd.DataFrame(case["history"], columns=["user_id", "item_id"])
    share = 0.6 if seed == 5 else HEAD_SHARE
    _, tail = split.head_tail_split(history.groupby("item_id").size(), case["catalogue"], share)

    recs = spark.createDataFrame(case["recs"], RECS)
    truth_s = spark.createDataFrame(case["truth"], PAIR)
    catalogue = spark.createDataFrame([(i,) for i in case["catalogue"]], "item_id string")
    flags = spark_eval.item_flags(spark.createDataFrame(case["history"], PAIR), catalogue, share)
    assert {r[0] for r in flags.where("is_tail").collect()} == tail
    assert flags.count() == len(set(case["catalogue"]))

    pairs = [
        (spark_eval.ndcg_at_k(recs, truth_s, 10), ranking.ndcg_at_k(lists, truth, 10)),
        (spark_eval.ndcg_at_k(recs, truth_s, 3), ranking.ndcg_at_k(lists, truth, 3)),
        (spark_eval.recall_at_k(recs, truth_s, 20), ranking.recall_at_k(lists, truth, 20)),
        (spark_eval.recall_at_k(recs, truth_s, 5), ranking.recall_at_k(lists, truth, 5)),
        (spark_eval.aplt_at_k(recs, flags, 10), ranking.aplt_at_k(lists, tail, 10)),
        (
            spark_eval.tail_recall_at_k(recs, truth_s, flags, 20),
            ranking.tail_recall_at_k(lists, truth, tail, 20),
        ),
        (
            spark_eval.coverage_at_k(recs, flags, 10),
            ranking.coverage_at_k(lists, case["catalogue"], 10),
        ),
    ]
    for n, (got, want) in enumerate(pairs):
        assert not math.isnan(want), n
        assert got == pytest.approx(want, abs=1e-12, rel=0), n


def test_spark_metrics_without_truth_or_tail(spark: Any) -> None:
    recs = spark.createDataFrame([("u1", 1, "a"), ("u1", 2, "b")], RECS)
    none = spark.createDataFrame([], PAIR)
    assert math.isnan(spark_eval.ndcg_at_k(recs, none))
    assert math.isnan(spark_eval.recall_at_k(recs, none))
    catalogue = spark.createDataFrame([("a",), ("b",)], "item_id string")
    flags = spark_eval.item_flags(spark.createDataFrame([("u1", "a")], PAIR), catalogue)
    assert math.isnan(spark_eval.tail_recall_at_k(recs, none, flags))
    assert spark_eval.aplt_at_k(recs, flags, 10) == ranking.aplt_at_k({"u1": ["a", "b"]}, {"b"})
