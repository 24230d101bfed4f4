"""The pandas evaluation metrics (`longtail.evaluation.ranking`, also the benchmark's) against
hand-computed values on tiny, literal cases (no Spark)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from longtail.evaluation.ranking import (
    PER_USER_METRICS,
    aplt_at_k,
    candidate_recall,
    cold_item_recall_at_k,
    coverage_at_k,
    evaluate,
    gini_at_k,
    ndcg_at_k,
    novelty_at_k,
    per_user,
    per_user_metric,
    popularity_curve,
    recall_at_k,
    recs_from_frame,
    tail_recall_at_k,
)
from longtail.evaluation.split import head_tail_split

EVALUATE_KEYS = {
    "ndcg@10",
    "recall@20",
    "aplt@10",
    "tail_recall@20",
    "coverage@10",
    "gini@10",
    "novelty@10",
    "cold_item_recall@20",
}


# --- input helpers ----------------------------------------------------------------------------


def test_recs_from_frame_orders_by_rank_not_row_order() -> None:
    df = pd.DataFrame(
        {
            "user_id": ["u2", "u1", "u1", "u1", "u2"],
            "rank": [2, 3, 1, 2, 1],
            "item_id": ["y", "c", "a", "b", "x"],
        }
    )
    assert recs_from_frame(df) == {"u1": ["a", "b", "c"], "u2": ["x", "y"]}


def test_frame_input_scores_like_dict_input() -> None:
    df = pd.DataFrame(
        {"user_id": ["u1", "u1", "u1"], "rank": [3, 1, 2], "item_id": ["c", "a", "b"]}
    )
    truth = {"u1": {"a", "c"}}
    assert ndcg_at_k(df, truth) == pytest.approx(ndcg_at_k({"u1": ["a", "b", "c"]}, truth))
    assert ndcg_at_k(df, truth) == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))


# --- head / tail ------------------------------------------------------------------------------


def test_head_tail_split_hand_case() -> None:
    counts = {"a": 50, "b": 30, "c": 10, "d": 5, "e": 5}
    head, tail = head_tail_split(counts, ["a", "b", "c", "d", "e", "f"], head_share=0.8)
    assert head == {"a", "b"}  # 50 + 30 = 80 = 80% of 100
    assert tail == {"c", "d", "e", "f"}  # f never interacted: tail, not dropped


def test_head_tail_split_ties_broken_by_item_id() -> None:
    counts = {"d": 10, "c": 10, "b": 10, "a": 10}
    head, tail = head_tail_split(counts, ["d", "c", "b", "a"], head_share=0.5)
    assert head == {"a", "b"}
    assert tail == {"c", "d"}


def test_head_tail_split_float_threshold_is_not_overshot() -> None:
    # 0.07 * 100 == 7.000000000000001 in floating point; one item with 7 of 100 is enough.
    counts = {f"i{j:02d}": 7 for j in range(14)} | {"i14": 2}
    head, tail = head_tail_split(counts, list(counts), head_share=0.07)
    assert head == {"i00"}
    assert len(tail) == 14


def test_head_tail_split_share_one_and_outside_items() -> None:
    counts = pd.Series({"a": 3, "b": 1, "zz": 100})  # zz is not in the catalogue: ignored
    head, tail = head_tail_split(counts, ["a", "b", "c"], head_share=1.0)
    assert head == {"a", "b"}
    assert tail == {"c"}


def test_head_tail_split_no_interactions_is_all_tail() -> None:
    head, tail = head_tail_split({}, ["a", "b"])
    assert head == set()
    assert tail == {"a", "b"}


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_head_tail_split_rejects_bad_share(share: float) -> None:
    with pytest.raises(ValueError):
        head_tail_split({"a": 1}, ["a"], head_share=share)


# --- NDCG ---------------------------------------------------------------------------------------


def test_ndcg_hand_case() -> None:
    got = ndcg_at_k({"u1": ["a", "b", "c"]}, {"u1": {"a", "c"}}, k=10)
    assert got == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))


def test_ndcg_user_missing_from_recs_counts_zero() -> None:
    got = ndcg_at_k({"u1": ["a", "b", "c"]}, {"u1": {"a", "c"}, "u2": {"x"}}, k=10)
    assert got == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)) / 2)


def test_ndcg_cuts_list_at_k() -> None:
    recs, truth = {"u1": ["a", "b", "c"]}, {"u1": {"c"}}
    assert ndcg_at_k(recs, truth, k=2) == 0.0
    assert ndcg_at_k(recs, truth, k=3) == pytest.approx(1 / math.log2(4))


def test_ndcg_ideal_uses_min_k_truth() -> None:
    truth = {"u1": {"a", "b", "c", "d"}}
    assert ndcg_at_k({"u1": ["a"]}, truth, k=1) == pytest.approx(1.0)
    assert ndcg_at_k({"u1": ["a", "x"]}, truth, k=2) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_ndcg_duplicates_not_double_counted() -> None:
    got = ndcg_at_k({"u1": ["a", "a", "b"]}, {"u1": {"a", "b"}}, k=10)
    assert got == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))


def test_ndcg_edge_cases() -> None:
    assert ndcg_at_k({}, {"u1": {"a"}}) == 0.0
    assert ndcg_at_k({"u1": []}, {"u1": {"a"}}) == 0.0
    assert ndcg_at_k({"u1": ["a"]}, {"u1": {"a"}, "u2": set()}) == pytest.approx(1.0)
    assert math.isnan(ndcg_at_k({"u1": ["a"]}, {}))
    with pytest.raises(ValueError):
        ndcg_at_k({"u1": ["a"]}, {"u1": {"a"}}, k=0)


# --- recall -------------------------------------------------------------------------------------


def test_recall_hand_cases() -> None:
    recs, truth = {"u1": ["a", "b", "c"]}, {"u1": {"a", "c", "d"}}
    assert recall_at_k(recs, truth, k=20) == pytest.approx(2 / 3)
    assert recall_at_k(recs, truth, k=2) == pytest.approx(1 / 2)  # 1 hit / min(2, 3)
    assert recall_at_k({"u1": ["a", "b"]}, {"u1": {"a", "b", "c"}}, k=2) == pytest.approx(1.0)
    assert recall_at_k({"u1": ["b", "a"]}, {"u1": {"a"}}, k=1) == 0.0


def test_recall_missing_user_and_duplicates() -> None:
    assert recall_at_k({"u1": ["a"]}, {"u1": {"a"}, "u2": {"b"}}) == pytest.approx(1 / 2)
    assert recall_at_k({"u1": ["a", "a"]}, {"u1": {"a", "b"}}, k=2) == pytest.approx(1 / 2)
    assert recall_at_k({}, {"u1": {"a"}}) == 0.0
    assert math.isnan(recall_at_k({"u1": ["a"]}, {"u1": set()}))


# --- APLT ---------------------------------------------------------------------------------------


def test_aplt_hand_cases() -> None:
    tail = {"t1", "t2"}
    recs = {"u1": ["t1", "h1", "t2", "h2"], "u2": ["h1", "h2"]}
    assert aplt_at_k(recs, tail, k=10) == pytest.approx((2 / 4 + 0 / 2) / 2)
    assert aplt_at_k(recs, tail, k=3) == pytest.approx((2 / 3 + 0 / 2) / 2)
    assert aplt_at_k({"u1": ["t1", "h1"]}, tail, k=10) == pytest.approx(1 / 2)  # short list


def test_aplt_users_empty_lists_and_duplicates() -> None:
    tail = {"t1", "t2"}
    recs = {"u1": ["t1", "h1", "t2", "h2"], "u3": []}
    assert aplt_at_k(recs, tail, k=10) == pytest.approx((2 / 4 + 0) / 2)
    assert aplt_at_k(recs, tail, k=10, users=["u1", "u4"]) == pytest.approx((2 / 4 + 0) / 2)
    # the repeated t1 is one item: 1 tail item out of 2 distinct slots
    assert aplt_at_k({"u1": ["t1", "t1", "h1"]}, tail, k=10) == pytest.approx(1 / 2)
    assert math.isnan(aplt_at_k({}, tail))


# --- tail / cold recall -------------------------------------------------------------------------


def test_tail_recall_pools_pairs() -> None:
    truth = {"u1": {"t1", "h1"}, "u2": {"t2", "t3"}, "u3": {"t1"}}
    recs = {"u1": ["t1", "x"], "u2": ["h9", "t3", "t2"]}  # u3 has no recs
    tail = {"t1", "t2", "t3"}
    assert tail_recall_at_k(recs, truth, tail, k=2) == pytest.approx(2 / 4)
    assert tail_recall_at_k(recs, truth, tail, k=3) == pytest.approx(3 / 4)
    assert math.isnan(tail_recall_at_k(recs, {"u1": {"h1"}}, tail))


def test_tail_recall_duplicates_not_double_counted() -> None:
    truth = {"u1": {"t1", "t2"}}
    assert tail_recall_at_k({"u1": ["t1", "t1"]}, truth, {"t1", "t2"}) == pytest.approx(1 / 2)


def test_cold_item_recall() -> None:
    truth = {"u1": {"c1", "a"}, "u2": {"c2"}}
    recs = {"u1": ["c1", "a"], "u2": ["a", "b"]}
    assert cold_item_recall_at_k(recs, truth, {"c1", "c2"}, k=20) == pytest.approx(1 / 2)
    assert cold_item_recall_at_k(recs, truth, {"c1", "c2"}, k=1) == pytest.approx(1 / 2)
    assert math.isnan(cold_item_recall_at_k(recs, truth, set()))
    assert math.isnan(cold_item_recall_at_k(recs, {"u1": {"a"}}, {"c1"}))


# --- coverage / Gini ----------------------------------------------------------------------------


def test_coverage() -> None:
    catalogue = ["a", "b", "c", "d", "e"]
    recs = {"u1": ["a", "b", "z"], "u2": ["b", "c"]}  # z is not in the catalogue
    assert coverage_at_k(recs, catalogue, k=10) == pytest.approx(3 / 5)
    assert coverage_at_k(recs, catalogue, k=1) == pytest.approx(2 / 5)
    assert coverage_at_k({}, catalogue) == 0.0
    assert math.isnan(coverage_at_k(recs, []))


def test_gini_uniform_is_zero() -> None:
    assert gini_at_k({"u1": ["a", "b"], "u2": ["c", "d"]}, ["a", "b", "c", "d"]) == 0.0


def test_gini_all_on_one_item() -> None:
    recs = {"u1": ["a"], "u2": ["a"], "u3": ["a"]}
    assert gini_at_k(recs, ["a", "b", "c", "d"]) == pytest.approx((4 - 1) / 4)


def test_gini_hand_case_counts_unrecommended_items() -> None:
    # counts a=2, b=1, c=0 -> sorted [0, 1, 2]: ((-2)*0 + 0*1 + 2*2) / (3 * 3)
    recs = {"u1": ["a", "b"], "u2": ["a"]}
    assert gini_at_k(recs, ["a", "b", "c"]) == pytest.approx(4 / 9)
    # k=1 leaves a=2 only: ((-2)*0 + 0*0 + 2*2) / (3 * 2)
    assert gini_at_k(recs, ["a", "b", "c"], k=1) == pytest.approx(4 / 6)


def test_gini_no_recommendations_is_zero() -> None:
    assert gini_at_k({}, ["a", "b"]) == 0.0
    assert gini_at_k({"u1": []}, ["a", "b"]) == 0.0


# --- novelty ------------------------------------------------------------------------------------


def test_novelty_hand_case_with_cold_item_clipped() -> None:
    counts = {"a": 4, "b": 2, "c": 1}  # d is cold: p clipped to 1/8
    recs = {"u1": ["a", "b"], "u2": ["c", "d"]}
    # u1: (-log2(4/8) - log2(2/8)) / 2 = 1.5 ; u2: (-log2(1/8) - log2(1/8)) / 2 = 3
    assert novelty_at_k(recs, counts, n_train_users=8) == pytest.approx((1.5 + 3.0) / 2)
    assert novelty_at_k(recs, pd.Series(counts), 8, k=1) == pytest.approx((1.0 + 3.0) / 2)
    assert novelty_at_k(recs, counts, 8, users=["u1"]) == pytest.approx(1.5)


def test_novelty_edge_cases() -> None:
    assert novelty_at_k({"u1": ["a"]}, {"a": 10}, 8) == 0.0  # p clipped to 1
    assert novelty_at_k({"u1": ["a"], "u2": []}, {"a": 2}, 8) == pytest.approx(2.0)
    assert math.isnan(novelty_at_k({}, {"a": 1}, 8))
    with pytest.raises(ValueError):
        novelty_at_k({"u1": ["a"]}, {"a": 1}, 0)


# --- evaluate / curve ---------------------------------------------------------------------------


def test_evaluate_matches_individual_metrics() -> None:
    catalogue = ["a", "b", "c", "d", "e", "f"]
    counts = {"a": 6, "b": 3, "c": 1, "d": 1, "e": 1}  # f is cold
    recs = {"u1": ["a", "b", "f"], "u2": ["c", "a"], "u3": []}
    truth = {"u1": {"f", "d"}, "u2": {"a"}, "u4": {"e"}}
    tail, cold = {"c", "d", "e", "f"}, {"f"}
    got = evaluate(recs, truth, catalogue, counts, 4, tail, cold)
    assert set(got) == EVALUATE_KEYS
    assert got["ndcg@10"] == pytest.approx(
        ((1 / math.log2(4)) / (1 + 1 / math.log2(3)) + 1 / math.log2(3) + 0) / 3
    )
    assert got["recall@20"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    # over eval users u1, u2, u4: 1/3, 1/2, 0 (u4 has no list)
    assert got["aplt@10"] == pytest.approx((1 / 3 + 1 / 2 + 0) / 3)
    assert got["tail_recall@20"] == pytest.approx(1 / 3)  # (u1,f) found; (u1,d), (u4,e) not
    assert got["cold_item_recall@20"] == pytest.approx(1.0)
    assert got["coverage@10"] == pytest.approx(4 / 6)
    assert got["gini@10"] == pytest.approx(gini_at_k(recs, catalogue))
    assert got["novelty@10"] == pytest.approx(
        novelty_at_k(recs, counts, 4, users=["u1", "u2", "u4"])
    )
    assert got["aplt@10"] == pytest.approx(aplt_at_k(recs, tail, users=list(truth)))


def test_evaluate_nan_when_no_cold_pairs() -> None:
    got = evaluate({"u1": ["a"]}, {"u1": {"a"}}, ["a", "b"], {"a": 1}, 1, {"b"}, {"b"})
    assert math.isnan(got["cold_item_recall@20"])
    assert math.isnan(got["tail_recall@20"])
    assert got["ndcg@10"] == pytest.approx(1.0)


def test_popularity_curve() -> None:
    recs = {"u1": ["c", "d"], "u2": ["c", "a"]}
    curve = popularity_curve(recs, {"a": 5, "b": 9, "c": 5}, ["a", "b", "c", "d"])
    assert list(curve.columns) == [
        "popularity_rank",
        "item_id",
        "train_count",
        "rec_count",
        "is_head",
        "catalogue_share",
        "train_cum_share",
        "rec_cum_share",
    ]
    assert curve["popularity_rank"].tolist() == [1, 2, 3, 4]
    assert curve["item_id"].tolist() == ["b", "a", "c", "d"]  # a before c on the 5-5 tie
    assert curve["train_count"].tolist() == [9, 5, 5, 0]
    assert curve["rec_count"].tolist() == [0, 1, 2, 1]
    # 80% of 19 interactions = 15.2: b + a = 14 is short, b + a + c = 19 reaches it
    assert curve["is_head"].tolist() == [True, True, True, False]
    assert curve["catalogue_share"].tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert curve["train_cum_share"].tolist() == pytest.approx([9 / 19, 14 / 19, 1.0, 1.0])
    assert curve["rec_cum_share"].tolist() == pytest.approx([0.0, 1 / 4, 3 / 4, 1.0])
    assert popularity_curve(recs, {"a": 5}, ["a", "b", "c", "d"], k=1)["rec_count"].sum() == 2


def test_popularity_curve_head_matches_split_and_empty_recs() -> None:
    counts = {"a": 5, "b": 9, "c": 5}
    catalogue = ["a", "b", "c", "d"]
    curve = popularity_curve({}, counts, catalogue, head_share=0.5)
    # 50% of 19 = 9.5: b alone (9) is short, b + a (14) reaches it
    assert curve["is_head"].tolist() == [True, True, False, False]
    head, _ = head_tail_split(counts, catalogue, head_share=0.5)
    assert set(curve.loc[curve["is_head"], "item_id"]) == head
    assert curve["rec_cum_share"].isna().all()  # nothing recommended: no share to accumulate
    assert popularity_curve({}, {}, []).empty


# --- per-user contributions ---------------------------------------------------------------------


def _small_case() -> tuple[dict, dict, set, set]:
    recs = {"u1": ["a", "b", "f"], "u2": ["c", "a"], "u3": []}
    truth = {"u1": {"f", "d"}, "u2": {"a"}, "u4": {"e"}, "u5": set()}
    return recs, truth, {"c", "d", "e", "f"}, {"f"}


def test_per_user_hand_case() -> None:
    recs, truth, tail, cold = _small_case()
    got = per_user(recs, truth, tail, cold)
    assert got.index.tolist() == ["u1", "u2", "u4", "u5"]  # truth users; u3 has no truth
    assert got.index.name == "user_id"
    u1_ndcg = (1 / math.log2(4)) / (1 + 1 / math.log2(3))  # f at position 3 of 2 relevant
    assert got["ndcg@10_num"].tolist() == pytest.approx([u1_ndcg, 1 / math.log2(3), 0.0, 0.0])
    assert got["ndcg@10_den"].tolist() == [1, 1, 1, 0]  # u5 has nothing to judge
    assert got["recall@20_num"].tolist() == pytest.approx([1 / 2, 1.0, 0.0, 0.0])
    assert got["recall@20_den"].tolist() == [1, 1, 1, 0]
    assert got["tail_recall@20_num"].tolist() == [1, 0, 0, 0]  # (u1, f) found
    assert got["tail_recall@20_den"].tolist() == [2, 0, 1, 0]  # (u1, f), (u1, d), (u4, e)
    assert got["cold_item_recall@20_num"].tolist() == [1, 0, 0, 0]
    assert got["cold_item_recall@20_den"].tolist() == [1, 0, 0, 0]
    assert per_user_metric(got, "ndcg@10") == pytest.approx((u1_ndcg + 1 / math.log2(3)) / 3)
    assert per_user_metric(got, "recall@20") == pytest.approx((1 / 2 + 1) / 3)
    assert per_user_metric(got, "tail_recall@20") == pytest.approx(1 / 3)
    assert per_user_metric(got, "cold_item_recall@20") == pytest.approx(1.0)


def test_per_user_columns_without_cold_items() -> None:
    recs, truth, tail, _ = _small_case()
    got = per_user(recs, truth, tail)
    assert list(got.columns) == [f"{m}_{part}" for m in PER_USER_METRICS for part in ("num", "den")]


def test_per_user_metric_on_a_resample_of_users() -> None:
    recs, truth, tail, _ = _small_case()
    frame = per_user(recs, truth, tail)
    u1_ndcg = (1 / math.log2(4)) / (1 + 1 / math.log2(3))
    draw = frame.loc[["u1", "u1", "u4", "u5"]]  # u1 twice, u2 not drawn
    assert per_user_metric(draw, "ndcg@10") == pytest.approx(2 * u1_ndcg / 3)
    assert per_user_metric(draw, "recall@20") == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert per_user_metric(draw, "tail_recall@20") == pytest.approx(2 / 5)
    assert math.isnan(per_user_metric(frame.loc[["u2", "u5"]], "tail_recall@20"))  # 0 / 0
    assert math.isnan(per_user_metric(frame.iloc[:0], "ndcg@10"))


def test_per_user_sums_equal_evaluate_exactly() -> None:
    rng = np.random.default_rng(7)
    items = [f"i{j}" for j in range(60)]
    counts = {item: int(c) for item, c in zip(items, rng.integers(0, 50, 60), strict=True)}
    head, tail = head_tail_split(counts, items)
    cold = {i for i in items if counts[i] == 0}
    truth = {
        f"u{j}": set(rng.choice(items, size=int(rng.integers(0, 6)), replace=False))
        for j in range(400)
    }
    recs = {
        f"u{j}": list(rng.choice(items, size=int(rng.integers(0, 25)), replace=True))
        for j in range(0, 420, 1)
        if j % 7  # every 7th user has no list at all
    }
    assert head and tail and cold
    full = evaluate(recs, truth, items, counts, 50, tail, cold)
    frame = per_user(recs, truth, tail, cold)
    for metric in (*PER_USER_METRICS, "cold_item_recall@20"):
        assert per_user_metric(frame, metric) == full[metric], metric
    assert per_user_metric(frame, "ndcg@10") == ndcg_at_k(recs, truth, k=10)
    assert per_user_metric(frame, "recall@20") == recall_at_k(recs, truth, k=20)


def test_candidate_recall_pools_pairs() -> None:
    truth = {"u1": {"a", "b"}, "u2": {"c"}, "u3": {"d"}}
    cands = {"u1": ["b", "x", "a"], "u2": ["a"], "u4": ["d"]}
    # u1 finds both, u2 none (a is not its item), u3 has no candidates: 2 of 4 pairs
    assert candidate_recall(cands, truth) == 0.5
    assert math.isnan(candidate_recall(cands, {}))
