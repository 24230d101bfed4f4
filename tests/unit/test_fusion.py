"""Candidate sources, re-ranking and item-space helpers on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix
from tests.unit import fusion_reference

from longtail import columns as C
from longtail import fusion
from longtail.config import ScoreConfig

IDS = np.array(["a", "b", "c", "d", "e", "f"])


def _unit(deg: float) -> list[float]:
    return [float(np.cos(np.radians(deg))), float(np.sin(np.radians(deg)))]


def space(**overrides: object) -> fusion.ItemSpace:
    # a at 0 deg, b at 10 deg (close to a), c at 90, d at 95, e at 180 (cold), f at 5 (cold)
    emb = np.array([_unit(d) for d in (0, 10, 90, 95, 180, 5)], np.float32)
    cooc = csr_matrix(
        (np.array([0.9, 0.9], np.float32), (np.array([0, 2]), np.array([2, 0]))), shape=(6, 6)
    )
    base = dict(
        item_ids=IDS,
        embeddings=emb,
        als_factors=np.array([[1, 0], [0.9, 0], [0, 1], [0, 0.5], [0, 0], [0, 0]], np.float32),
        has_factors=np.array([1, 1, 1, 1, 0, 0], bool),
        cooc=cooc,
        popularity=np.log1p(np.array([50, 20, 10, 5, 0, 0], np.float32)),
        recent_popularity=np.log1p(np.array([40, 10, 10, 2, 0, 0], np.float32)),
        age_days=np.array([100, 100, 100, 100, 1, 1], np.float32),
        is_tail=np.array([0, 0, 1, 1, 1, 1], bool),
        is_cold=np.array([0, 0, 0, 0, 1, 1], bool),
        category=np.array([0, 0, 1, 1, 1, 0], np.int32),
        n_categories=2,
        price=np.array([1, 2, 3, 4, 5, 6], np.float32),
    )
    base.update(overrides)
    return fusion.ItemSpace(**base)  # type: ignore[arg-type]


def users(rows: list[dict]) -> pd.DataFrame:
    out = []
    for r in rows:
        out.append(
            {
                C.USER_ID: r["user"],
                fusion.HIST_ITEMS: r["items"],
                fusion.HIST_WEIGHTS: [1.0] * len(r["items"]),
                fusion.HIST_TS: list(range(len(r["items"]))),
                fusion.EXCLUDED: r.get("excluded", r["items"]),
                C.FACTORS: r.get("factors"),
            }
        )
    return pd.DataFrame(out)


ONLY = dict(
    als=0, content=0, cooccurrence=0, category=0, tail_explorer=0, cold_text=0, popularity=0
)


def _cands(u: pd.DataFrame, **counts: int) -> pd.DataFrame:
    sp = space()
    return fusion.candidates(u, sp, fusion.CandidateCounts(**{**ONLY, **counts}), sp.index)


def items_of(c: pd.DataFrame) -> set[str]:
    return set(IDS[c["item_idx"].to_numpy()])


def test_content_neighbour_is_the_closest_text() -> None:
    c = _cands(users([{"user": "u", "items": ["a"]}]), content=1)
    # closest to a (0 deg) other than a itself: f at 5 deg
    assert items_of(c) == {"f"}
    assert c[C.SOURCE].tolist() == ["content"]
    assert c["content_profile_sim"].iloc[0] == pytest.approx(np.cos(np.radians(5)), abs=1e-6)


def test_cold_text_only_offers_items_without_interactions() -> None:
    c = _cands(users([{"user": "u", "items": ["c"]}]), cold_text=1)
    # cold items are e (180 deg) and f (5 deg); c is at 90 deg: f is closer (85 vs 90 deg)
    assert items_of(c) == {"f"}
    assert c[C.SOURCE].tolist() == ["cold_text"]


def test_scoring_can_widen_the_new_item_candidates_the_ranker_was_trained_with() -> None:
    sp = space()
    meta = {"candidate_counts": {**ONLY, "cold_text": 1}}
    trained, _ = fusion.retrieval_from_meta(sp, meta)
    assert trained.cold_text == 1
    counts, re = fusion.retrieval_from_meta(sp, meta, cold_text=2)
    # every other count as trained; the two cold items e and f both offered now
    assert counts == fusion.CandidateCounts(**{**ONLY, "cold_text": 2})
    c = fusion.candidates(users([{"user": "u", "items": ["c"]}]), sp, counts, sp.index, re)
    assert items_of(c) == {"e", "f"}
    assert set(c[C.SOURCE]) == {"cold_text"}


def test_scoring_adds_the_tail_lookups_the_ranker_was_trained_without() -> None:
    sp = space()
    meta = {"candidate_counts": {**ONLY, "als": 1}}  # a ranker's meta: no tail lookups in it
    trained, _ = fusion.retrieval_from_meta(sp, meta)
    assert (trained.als_tail, trained.cooccurrence_tail) == (0, 0)
    counts, _ = fusion.retrieval_from_meta(sp, meta, als_tail=1, cooccurrence_tail=2)
    assert counts == fusion.CandidateCounts(
        **{**ONLY, "als": 1, "als_tail": 1, "cooccurrence_tail": 2}
    )
    # the score stage's settings are exactly retrieval_from_meta's widening keywords
    cfg = ScoreConfig(ds="2026-01-31", warehouse="/tmp/wh", k_als_tail=3, k_cooccurrence_tail=4)
    widened, _ = fusion.retrieval_from_meta(sp, meta, **cfg.scoring_counts())
    assert (widened.als_tail, widened.cooccurrence_tail) == (3, 4)
    # by default scoring asks for the ranker's own candidates, the wider new items and 30 tail
    # items from each of the two lookups
    default, _ = fusion.retrieval_from_meta(sp, meta, **ScoreConfig.default_scoring_counts())
    assert default == fusion.CandidateCounts(
        **{**ONLY, "als": 1, "cold_text": 40, "als_tail": 30, "cooccurrence_tail": 30}
    )


def test_als_looks_deeper_within_the_tail() -> None:
    # factors (1, 0.1): a 1.0 (bought), b 0.9 (head), c 0.1 and d 0.05 (tail), e and f none
    u = users([{"user": "u", "items": ["a"], "factors": [1.0, 0.1]}])
    assert items_of(_cands(u, als=1)) == {"b"}
    c = _cands(u, als=1, als_tail=1)
    assert items_of(c) == {"b", "c"}  # the best tail item, though d and c rank below b
    assert set(c[C.SOURCE]) == {"als"} and c["n_sources"].tolist() == [1, 1]
    assert c.set_index("item_idx")["als_score"].to_dict() == pytest.approx({1: 0.9, 2: 0.1})
    # the tail lookup alone offers tail items with factors only: c, then d
    assert items_of(_cands(u, als_tail=4)) == {"c", "d"}
    # c is marked as found by the lookup only; b, found by the top-k, is not
    assert c.set_index("item_idx")[fusion.TAIL_LOOKUP].to_dict() == {1: False, 2: True}
    # with the top-3 (b, c, d) the lookup finds nothing of its own
    assert not _cands(u, als=3, als_tail=1)[fusion.TAIL_LOOKUP].any()
    assert not _cands(u, als=1)[fusion.TAIL_LOOKUP].any()


def test_cooccurrence_looks_deeper_within_the_tail() -> None:
    # a co-occurs with b (head, 0.9) and with d (tail, 0.3)
    cooc = csr_matrix(
        (
            np.array([0.9, 0.3, 0.9, 0.3], np.float32),
            (np.array([0, 0, 1, 3]), np.array([1, 3, 0, 0])),
        ),
        shape=(6, 6),
    )
    sp = space(cooc=cooc)
    u = users([{"user": "u", "items": ["a"]}])

    def cands(**counts: int) -> pd.DataFrame:
        return fusion.candidates(u, sp, fusion.CandidateCounts(**{**ONLY, **counts}), sp.index)

    assert items_of(cands(cooccurrence=1)) == {"b"}
    c = cands(cooccurrence=1, cooccurrence_tail=1)
    assert items_of(c) == {"b", "d"} and set(c[C.SOURCE]) == {"cooccurrence"}
    assert c.set_index("item_idx")["cooccurrence"].to_dict() == pytest.approx({1: 0.9, 3: 0.3})
    assert c.set_index("item_idx")[fusion.TAIL_LOOKUP].to_dict() == {1: False, 3: True}
    assert items_of(cands(cooccurrence_tail=5)) == {"d"}  # never a head item
    assert not cands(cooccurrence=2, cooccurrence_tail=1)[fusion.TAIL_LOOKUP].any()


def test_tail_explorer_only_offers_tail_items() -> None:
    c = _cands(users([{"user": "u", "items": ["a"]}]), tail_explorer=2)
    assert items_of(c) <= {"c", "d", "e", "f"}
    assert "f" in items_of(c)


def test_cooccurrence_follows_the_matrix() -> None:
    c = _cands(users([{"user": "u", "items": ["a"]}]), cooccurrence=3)
    assert items_of(c) == {"c"}  # only a-c co-occur
    assert c["cooccurrence"].iloc[0] == pytest.approx(0.9)


def test_als_source_uses_factors_and_skips_users_without() -> None:
    u = users(
        [
            {"user": "u", "items": ["c"], "factors": [1.0, 0.0]},
            {"user": "v", "items": ["c"], "factors": None},
        ]
    )
    c = _cands(u, als=1)
    assert c[C.USER_ID].tolist() == ["u"]
    assert items_of(c) == {"a"}  # a has the largest dot product with (1, 0)
    assert c["als_score"].iloc[0] == pytest.approx(1.0)


def test_popularity_and_exclusions() -> None:
    c = _cands(users([{"user": "u", "items": ["a"], "excluded": ["a"]}]), popularity=2)
    assert items_of(c) == {"b", "c"}  # a excluded; then b (20+10) and c (10+10) by log counts


def test_source_priority_and_n_sources() -> None:
    c = _cands(users([{"user": "u", "items": ["a"], "factors": [0.0, 1.0]}]), als=1, cooccurrence=1)
    # c is proposed by both ALS (0,1).c = 1 and co-occurrence: ALS names it, n_sources = 2
    row = c[c["item_idx"] == 2].iloc[0]
    assert row[C.SOURCE] == "als" and row["n_sources"] == 2


def test_tail_rerank_holds_the_target_share_at_each_block_end_placing_forced_items_late() -> None:
    scores = np.array([9, 8, 7, 6, 5, 4, 3, 2], float)
    is_tail = np.array([0, 0, 0, 0, 0, 1, 1, 1], bool)
    # One block (the list of 6 is shorter than 10): floor(0.5 x 6) = 3 tail items by position 6,
    # placed as late as possible: the three best head items keep positions 1-3.
    pos, out = fusion.tail_rerank(scores, is_tail, 6, 0.5)
    assert pos.tolist() == [0, 1, 2, 5, 6, 7]
    assert out.tolist() == [9, 8, 7, 4, 3, 2]
    # Blocks of 2: floor(0.5 k) tail items by k = 2, 4, 6, each at its block's end.
    pos, out = fusion.tail_rerank(scores, is_tail, 6, 0.5, block=2)
    assert pos.tolist() == [0, 5, 1, 6, 2, 7]
    assert out.tolist() == [9, 4, 4, 3, 3, 2]  # capped: never increasing
    pos0, out0 = fusion.tail_rerank(scores, is_tail, 4, 0.0)
    assert pos0.tolist() == [0, 1, 2, 3] and out0.tolist() == [9, 8, 7, 6]


def test_tail_rerank_gives_new_items_their_slots_in_every_prefix() -> None:
    scores = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0.5])
    is_tail = np.array([0, 0, 0, 0, 0, 1, 1, 0, 0, 1], bool)
    is_new = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1], bool)  # never sold: counts as tail too
    # block=1: the floors hold in every prefix. k=4: floor(1.2) tail -> item 5; k=5: floor(1.0)
    # new -> item 8 (the best new one), which is also the second tail item; k=10: floor(2.0) new
    # -> item 9.
    pos, out = fusion.tail_rerank(scores, is_tail, 10, 0.3, is_new, 0.2, block=1)
    assert pos.tolist() == [0, 1, 2, 5, 8, 3, 4, 6, 7, 9]
    assert out.tolist() == [9, 8, 7, 4, 1, 1, 1, 1, 1, 0.5]
    # Without new candidates the quota cannot be held: plain tail-aware order.
    pos2, _ = fusion.tail_rerank(scores[:8], is_tail[:8], 8, 0.3, is_new[:8], 0.2, block=1)
    assert pos2.tolist() == fusion.tail_rerank(scores[:8], is_tail[:8], 8, 0.3, block=1)[0].tolist()
    assert pos2.tolist() == [0, 1, 2, 5, 3, 4, 6, 7]


def test_looked_up_tail_items_take_only_warm_tail_positions() -> None:
    # h head 0.9, L warm tail found only by a tail lookup 0.8, N new 0.7, W warm tail 0.6,
    # g head 0.5; two positions, one of them tail (block 2).
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    is_tail = np.array([0, 1, 0, 1, 0], bool)
    is_new = np.array([0, 0, 1, 0, 0], bool)
    lookup = np.array([0, 1, 0, 0, 0], bool)

    def rerank(keep: list[int], s: np.ndarray = scores) -> list[int]:
        pos, _ = fusion.tail_rerank(
            s[keep], is_tail[keep], 2, 0.5, is_new[keep], 0.0, block=2, lookup=lookup[keep]
        )
        return [keep[p] for p in pos]

    every = [0, 1, 2, 3, 4]
    # Unmarked, the best tail candidate L takes the tail position; marked, the best tail
    # candidate without it is new (N), and N keeps that position.
    assert fusion.tail_rerank(scores, is_tail, 2, 0.5, is_new, 0.0, block=2)[0].tolist() == [0, 1]
    assert rerank(every) == [0, 2]
    # Without N the position would go to a warm tail item (W): L, the better one, takes it.
    assert rerank([0, 1, 3, 4]) == [0, 1]
    # Only looked-up tail candidates left: they fill the tail position.
    assert rerank([0, 1, 4]) == [0, 1]
    # A looked-up item that outscores everything takes its position by score.
    assert rerank(every, np.array([0.9, 0.95, 0.7, 0.6, 0.5])) == [1, 0]
    # Nothing marked: the plain floor (L takes the tail position, as unmarked above).
    unmarked = np.zeros(5, bool)
    none = fusion.tail_rerank(scores, is_tail, 2, 0.5, is_new, 0.0, block=2, lookup=unmarked)
    assert none[0].tolist() == [0, 1]


def test_tail_rerank_default_blocks_of_ten_fill_forced_slots_at_the_end_of_the_block() -> None:
    # Ten head items (scores 14..5), one warm tail item (4.5), new items (1, 0.5), a tail (0.2).
    scores = np.array([14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4.5, 1, 0.5, 0.2])
    is_tail = np.array([0] * 10 + [1, 0, 0, 1], bool)
    is_new = np.array([0] * 11 + [1, 1, 0], bool)
    pos, out = fusion.tail_rerank(scores, is_tail, 10, 0.3, is_new, 0.2)
    # By position 10: floor(3.0) tail (new ones count) and floor(2.0) new items. Positions 1-7
    # follow the scores; 8 is the best tail item (10), 9 and 10 the best new ones (11, 12).
    assert pos.tolist() == [0, 1, 2, 3, 4, 5, 6, 10, 11, 12]
    assert out.tolist() == [14, 13, 12, 11, 10, 9, 8, 4.5, 1, 0.5]
    # A list of 20 from the same candidates: the first block as above, then everything left.
    pos20, _ = fusion.tail_rerank(scores, is_tail, 20, 0.3, is_new, 0.2)
    assert pos20.tolist()[:10] == pos.tolist()
    assert sorted(pos20.tolist()[10:]) == [7, 8, 9, 13]


def test_exposure_penalty_is_log_of_exposure_over_the_mean_shown() -> None:
    shown = np.array([0.0, 1.0, 3.0, 8.0])  # mean over the shown items: 4
    assert np.allclose(fusion.exposure_penalty(shown), np.log1p([0, 0.25, 0.75, 2.0]))
    assert fusion.exposure_penalty(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]
    # New items are exempt (their slots are there to show them); the mean still counts them.
    new = np.array([False, False, True, False])
    assert np.allclose(fusion.exposure_penalty(shown, new), np.log1p([0, 0.25, 0, 2.0]))


def test_spread_scores_standardise_each_user_then_subtract_the_items_penalty() -> None:
    users = np.array(["a", "a", "b", "b", "b"])
    scores = np.array([1.0, 3.0, 10.0, 10.0, 10.0])
    items = np.array([0, 1, 0, 1, 2])
    penalty = np.array([0.5, 0.0, 0.25])
    got = fusion.spread_scores(users, scores, items, penalty)
    # a: mean 2, sd 1 -> (-1, 1); b: sd 0 -> kept at 0 (no division by zero)
    assert np.allclose(got, [-1 - 0.5, 1 - 0.0, 0 - 0.5, 0 - 0.0, 0 - 0.25])
    # A strong enough penalty swaps a's order: item 1 shown everywhere, item 0 nowhere.
    swapped = fusion.spread_scores(users[:2], scores[:2], items[:2], np.array([0.0, 2.5]))
    assert swapped[0] > swapped[1]


def test_tail_order_swaps_tail_items_by_their_co_occurrence_and_keeps_the_positions() -> None:
    # u: head h1 3.0, tail t1 2.0 (no co-occurrence), tail t2 1.0 (co-occurrence 10), head h2
    # 0.5; v: one tail item, which has nothing to swap with.
    users = np.array(["u", "u", "u", "u", "v", "v"])
    scores = np.array([3.0, 2.0, 1.0, 0.5, 1.0, 2.0])
    tail = np.array([False, True, True, False, True, False])
    cooc = np.array([0.0, 0.0, 10.0, 0.0, 10.0, 0.0])
    # u's z-scores: score mean 1.625, sd 0.9601 -> t1 0.3906, t2 -0.6510; log1p(cooc) =
    # (0, 0, 2.3979, 0): mean 0.5995, sd 1.0384 -> t1 -0.5774, t2 1.7321.
    # weight 0.5: t1 0.3906 - 0.2887 = 0.1019 < t2 -0.6510 + 0.8660 = 0.2150: t2 takes t1's
    # score (2.0) and t1 t2's (1.0); the head items and v keep theirs.
    got = fusion.tail_order(users, scores, tail, cooc, 0.5)
    assert got.tolist() == [3.0, 1.0, 2.0, 0.5, 1.0, 2.0]
    # weight 0.25: t1 0.3906 - 0.1443 = 0.2463 > t2 -0.6510 + 0.4330 = -0.2180: unchanged.
    assert fusion.tail_order(users, scores, tail, cooc, 0.25).tolist() == scores.tolist()
    assert fusion.tail_order(users, scores, tail, cooc, 0.0).tolist() == scores.tolist()


def test_ordered_tail_leaves_new_items_where_the_ranker_put_them() -> None:
    # c and d are warm tail items, e is new (also tail): only c and d trade places, by their
    # co-occurrence with the shopper's items, however much e co-occurs.
    cands = pd.DataFrame(
        {
            C.USER_ID: ["u"] * 4,
            "item_idx": [0, 2, 3, 4],  # a (head), c, d, e
            "cooccurrence": [0.0, 0.0, 10.0, 50.0],
        }
    )
    scores = np.array([3.0, 2.0, 1.0, 0.5])
    got = fusion.ordered_tail(cands, scores, space(), 2.0)
    assert got.tolist() == [3.0, 1.0, 2.0, 0.5]


def test_tail_rerank_floors_take_tail_items_in_the_floor_order_other_positions_by_score() -> None:
    # h0 0.9, t1 0.8 (tail), h2 0.7, t3 0.6 (tail), t4 0.5 (tail), h5 0.4; four positions, two
    # of them tail by position 4 (one block).
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    is_tail = np.array([0, 1, 0, 1, 1, 0], bool)
    # By score: h0, t1 (wins position 2 on score: one tail item), h2, then the floor's one more
    # tail item at position 4: t3, the better one.
    pos, out = fusion.tail_rerank(scores, is_tail, 4, 0.5, block=4)
    assert pos.tolist() == [0, 1, 2, 3] and out.tolist() == [0.9, 0.8, 0.7, 0.6]
    # The floor order ranks t4 above t3 and t1 last: the floor takes t4; t1 still wins position 2
    # on score, and the output scores are the ranker's.
    floor = np.array([0.9, 0.1, 0.7, 0.2, 0.3, 0.4])
    pos, out = fusion.tail_rerank(scores, is_tail, 4, 0.5, block=4, floor_scores=floor)
    assert pos.tolist() == [0, 1, 2, 4] and out.tolist() == [0.9, 0.8, 0.7, 0.5]
    # No floor to fill: the floor order changes nothing.
    pos0, _ = fusion.tail_rerank(scores, is_tail, 4, 0.0, block=4, floor_scores=floor)
    assert pos0.tolist() == [0, 1, 2, 3]


def test_tail_order_subtracts_each_rows_exposure_from_the_key() -> None:
    # The co-occurrence test's shopper u: keys at weight 0.5 are t1 0.1019 < t2 0.2150 (t2 takes
    # t1's score). Exposure 0.2 on t2: 0.2150 - 0.2 = 0.0150 < 0.1019, so the order stays.
    users = np.array(["u", "u", "u", "u"])
    scores = np.array([3.0, 2.0, 1.0, 0.5])
    tail = np.array([False, True, True, False])
    cooc = np.array([0.0, 0.0, 10.0, 0.0])
    t2 = np.array([0.0, 0.0, 0.2, 0.0])
    assert fusion.tail_order(users, scores, tail, cooc, 0.5, t2).tolist() == scores.tolist()
    # Weight 0, exposure 1.1 on t1: t1 0.3906 - 1.1 = -0.7094 < t2 -0.6510: they swap. A head
    # row's exposure changes nothing (head rows keep their scores).
    t1 = np.array([5.0, 1.1, 0.0, 0.0])
    assert fusion.tail_order(users, scores, tail, cooc, 0.0, t1).tolist() == [3.0, 1.0, 2.0, 0.5]


def test_block_lists_tail_penalty_rotates_the_floors_tail_pick_only() -> None:
    # One shopper, candidates a (head), b (head), c and d (warm tail); three positions, one tail
    # item by position 3 (floor(0.34 x 3) = 1). c is shown by many other lists (penalty 5).
    sp = space()
    batch = pd.DataFrame({C.USER_ID: ["u"]})
    cands = pd.DataFrame(
        {
            C.USER_ID: ["u"] * 4,
            "item_idx": [0, 1, 2, 3],
            C.SOURCE: ["als"] * 4,
            "cooccurrence": [0.0] * 4,
        }
    )
    penalty = np.array([0.0, 0.0, 5.0, 0.0, 0.0, 0.0])

    def items(scores: list[float], pen: np.ndarray | None) -> list[str]:
        shape = fusion.ListShape(3, 0.34, tail_penalty=pen)
        return fusion.block_lists(batch, cands, np.array(scores), sp, shape)[C.ITEM_ID].tolist()

    # The floor fills position 3: c, the better tail item, without the penalty; d with it.
    assert items([3.0, 2.9, 2.0, 1.9], None) == ["a", "b", "c"]
    assert items([3.0, 2.9, 2.0, 1.9], penalty) == ["a", "b", "d"]
    # c outscores b: it wins position 2 on score, the floor has nothing to fill, c stays.
    assert items([3.0, 2.0, 2.95, 1.9], penalty) == ["a", "c", "b"]


def test_choose_spread_picks_the_strength_with_the_best_validation_ndcg() -> None:
    # Two users with the same two candidates; item 0 scores a little higher for both, but each
    # user bought item 1. Spreading by exposure (item 0 is in both top-1s) puts item 1 first.
    frame = pd.DataFrame(
        {
            C.USER_ID: ["u", "u", "v", "v"],
            "item_idx": [0, 1, 0, 1],
            "is_tail": [0.0, 0.0, 0.0, 0.0],
            "is_cold": [0.0, 0.0, 0.0, 0.0],
            "label": [0, 1, 0, 1],
        }
    )
    scores = np.array([1.0, 0.9, 1.0, 0.9])
    best, values = fusion.choose_spread(frame, scores, (0.0, 0.5, 3.0), 1, 0.0, 0.0)
    # strength 0: the list of one holds item 0, not the bought item: ndcg@10 = 0.
    assert values[0.0] == 0.0
    # z-scores: (+1, -1) each; exposure item 0 = 2 (mean 2) -> penalty log(2) x strength.
    # 0.5 x 0.69 = 0.35 < 2: order kept (0.0); 3 x 0.69 = 2.08 > 2: item 1 first (1.0).
    assert values[0.5] == 0.0 and values[3.0] == 1.0
    assert best == 3.0
    # Ties go to the stronger spread.
    best_tie, _ = fusion.choose_spread(frame, scores, (0.0, 0.5), 1, 0.0, 0.0)
    assert best_tie == 0.5


def test_head_tail_split_by_share() -> None:
    counts = np.array([50, 30, 10, 5, 5, 0], float)
    assert fusion.head_tail(counts, 0.8).tolist() == [False, False, True, True, True, True]


def test_cooccurrence_matrix_is_cosine_over_users() -> None:
    inter = pd.DataFrame(
        {
            C.USER_ID: ["u1", "u1", "u2", "u2", "u3"],
            C.ITEM_ID: ["a", "b", "a", "b", "a"],
            "last_ts": pd.to_datetime(["2024-01-01"] * 5, utc=True),
        }
    )
    m = fusion_reference.cooccurrence(inter, {"a": 0, "b": 1, "c": 2}, 3)
    # a in 3 users, b in 2, together in 2: 2 / sqrt(3 * 2)
    assert m[0, 1] == pytest.approx(2 / np.sqrt(6), rel=1e-6)
    assert m[0, 0] == 0 and m[2].nnz == 0


def test_recommend_gives_n_distinct_unexcluded_items() -> None:
    sp = space()
    u = users([{"user": "u", "items": ["a", "c"], "factors": [0.5, 0.5]}])
    out = fusion.recommend(u, sp, fusion.CandidateCounts(), None, fusion.ListShape(3, 0.34))
    assert len(out) == 3 and out[C.ITEM_ID].nunique() == 3
    assert not set(out[C.ITEM_ID]) & {"a", "c"}
    assert out[C.RANK].tolist() == [1, 2, 3]
    assert (np.diff(out[C.SCORE].to_numpy()) <= 0).all()
    assert out[C.IS_LONG_TAIL].sum() >= 1


def test_recent_similarity_is_each_users_max_over_their_recent_items() -> None:
    sp = space()
    u = users([{"user": "u", "items": ["a", "c"]}, {"user": "v", "items": ["d"]}])
    u[fusion.HIST_TS] = [[2.0, 1.0], [1.0]]  # u: a is the more recent item
    c = fusion.candidates(u, sp, fusion.CandidateCounts(**{**ONLY, "popularity": 6}), sp.index)
    emb = sp.embeddings.astype(np.float64)
    recent = {"u": [0, 2], "v": [3]}
    for row in c.itertuples(index=False):
        expected = max(emb[j] @ emb[row.item_idx] for j in recent[getattr(row, C.USER_ID)])
        assert row.content_recent_sim == pytest.approx(expected, abs=1e-6)


def test_final_lists_by_hand_with_interleaved_users() -> None:
    # rows of u2 and u1 interleaved; is_tail: c, d, e, f. u1 scores a 3, c 2, b 1; u2 d 5, a 4.
    cands = pd.DataFrame(
        {
            C.USER_ID: ["u2", "u1", "u1", "u2", "u1", None],
            "item_idx": np.array([3, 0, 2, 0, 1, 4], np.int32),
            C.SOURCE: ["content", "als", "cooccurrence", "als", "content", "als"],
        }
    )
    scores = np.array([5.0, 3.0, 2.0, 4.0, 1.0, 9.0])
    got = fusion.final_lists(cands, scores, space(), 3, 0.5)
    # users sorted; a user without an id is dropped; u1 at 0.5 needs a tail item by rank 2
    assert got[C.USER_ID].tolist() == ["u1", "u1", "u1", "u2", "u2"]
    assert got[C.RANK].tolist() == [1, 2, 3, 1, 2]
    assert got[C.ITEM_ID].tolist() == ["a", "c", "b", "d", "a"]
    assert got[C.SCORE].tolist() == [3.0, 2.0, 1.0, 5.0, 4.0]
    assert got[C.SOURCE].tolist() == ["als", "cooccurrence", "content", "content", "als"]
    assert got[fusion.IS_LONG_TAIL].tolist() == [False, True, False, True, False]
    assert got[C.RANK].dtype == np.int32
    empty = fusion.final_lists(cands.iloc[:0], np.zeros(0), space(), 3, 0.5)
    assert empty.empty and list(empty.columns) == list(got.columns)


def test_calibrated_targets_follow_each_history_and_keep_the_mean() -> None:
    shares = np.array([[1, 2], [0, 3], [3, 3]], float)  # (tail items, items) of three users
    prior, shift = fusion.tail_calibration(shares, 0.3, pseudo=1.0)
    # prior = mean(1/2, 0, 1) = 0.5; own = (t + 0.5) / (n + 1) = 0.5, 0.125, 0.875 (mean 0.5)
    assert prior == pytest.approx(0.5) and shift == pytest.approx(-0.2)
    got = fusion.calibrated_targets(shares, prior, shift, pseudo=1.0)
    assert got == pytest.approx([0.3, 0.0, 0.675])  # 0.125 - 0.2 clipped at 0


def _two_users_alike(items: list[int]) -> tuple[pd.DataFrame, np.ndarray]:
    """Candidates of users u1 and u2, both scoring `items` 3, 2, 1."""
    cands = pd.DataFrame(
        {
            C.USER_ID: ["u1"] * 3 + ["u2"] * 3,
            "item_idx": np.array(items * 2, np.int32),
            C.SOURCE: ["als"] * 6,
        }
    )
    return cands, np.array([3.0, 2.0, 1.0, 3.0, 2.0, 1.0])


def test_final_lists_take_one_tail_target_per_user() -> None:
    # both users score a 3, b 2, c 1 (c is tail); only u2's own target asks for tail items:
    # floor(0.7 x 3) = 2 by rank 3, so c moves to rank 2 (the one tail item there is)
    cands, scores = _two_users_alike([0, 1, 2])
    got = fusion.final_lists(cands, scores, space(), 3, {"u1": 0.0, "u2": 0.7})
    assert got[C.ITEM_ID].tolist() == ["a", "b", "c", "a", "c", "b"]


def test_recommend_calibrates_from_each_batch_users_history() -> None:
    sp = space()
    u = users([{"user": "h", "items": ["a", "b"]}, {"user": "t", "items": ["c", "d"]}])
    got = fusion.tail_shares(u, sp, sp.index)
    assert got.tolist() == [[0, 2], [2, 2]]  # c and d are tail
    counts = fusion.CandidateCounts(**{**ONLY, "popularity": 6})
    # popularity order a b c d e f minus own items; prior 0.5, shift -0.1, pseudo 5:
    # h: 2.5/7 - 0.1 = 0.257 -> one tail item by rank 4 (c, d are h's tail candidates);
    # t: 4.5/7 - 0.1 = 0.543 -> floor(0.543 x 4) = 2 tail items by rank 4, at ranks 3 and 4
    out = fusion.recommend(u, sp, counts, None, fusion.ListShape(4, 0.4, calibration=(0.5, -0.1)))
    lists = out.groupby(C.USER_ID)[fusion.IS_LONG_TAIL].apply(list).to_dict()
    assert lists["t"] == [False, False, True, True]
    assert sum(lists["h"]) >= 1


def test_users_without_any_cooccurrence_get_no_cooccurrence_candidates() -> None:
    # b co-occurs with nothing: an empty product with exclusions (once a scipy error)
    c = _cands(users([{"user": "u", "items": ["b"]}]), cooccurrence=3, popularity=1)
    assert "cooccurrence" not in set(c[C.SOURCE]) and items_of(c) == {"a"}


def test_top_new_scores_keep_each_users_best_new_candidates() -> None:
    users_ = np.array(["u1", "u2", "u1", "u1", "u2", "u1"])
    scores = np.array([5.0, 4.0, 1.0, 9.0, 3.0, 7.0])
    is_new = np.array([1, 1, 1, 0, 1, 1], bool)  # u1's 9.0 is not new
    got = fusion.top_new_scores(users_, scores, is_new, cap=2)
    assert sorted(got.tolist()) == [3.0, 4.0, 5.0, 7.0]  # u1: 7, 5 (not 1); u2: 4, 3


def test_new_item_threshold_fills_the_mean_number_of_slots() -> None:
    # Three sampled users, at most two slots each: u1's best new scores 5, 1; u2's 4, 3; u3 has
    # none. A mean of one slot a list is 3 slots: the three best pooled scores 5, 4, 3 -> bar 3,
    # so u1 gets 1 (5), u2 gets 2 (4, 3), u3 0: three in all.
    pooled = np.array([5.0, 1.0, 4.0, 3.0])
    assert fusion.new_item_threshold(pooled, 3, 1.0) == 3.0
    assert fusion.new_item_threshold(pooled, 3, 0.0) == np.inf  # no slots to give
    assert fusion.new_item_threshold(pooled, 3, 2.0) == -np.inf  # 6 wanted, 4 candidates
    users_ = np.array(["u1", "u1", "u2", "u2", "u3"])
    is_new = np.array([1, 1, 1, 1, 0], bool)
    scores = np.array([5.0, 1.0, 4.0, 3.0, 9.0])
    assert fusion.new_item_counts(users_, scores, is_new, 3.0, 2) == {"u1": 1, "u2": 2, "u3": 0}
    assert fusion.new_item_counts(users_, scores, is_new, -np.inf, 1) == {"u1": 1, "u2": 1, "u3": 0}


def test_final_lists_take_one_new_item_share_per_user() -> None:
    # Both users score a 3, b 2, e 1 (e is new, and tail); only u2's share asks for a new item
    # by rank 2: floor(0.5 x 2) = 1, placed at the end of the block.
    cands, scores = _two_users_alike([0, 1, 4])
    got = fusion.final_lists(cands, scores, space(), 2, 0.0, {"u1": 0.0, "u2": 0.5})
    assert got[C.ITEM_ID].tolist() == ["a", "b", "a", "e"]


def test_final_lists_keep_new_items_tail_positions_from_each_users_looked_up_rows() -> None:
    # Both users score a 3 (head), c 2 (warm tail), e 1 (new); one tail item by rank 2. Only
    # u2's c was found by a tail lookup alone: for u2 the tail position goes to e.
    cands, scores = _two_users_alike([0, 2, 4])
    cands[fusion.TAIL_LOOKUP] = [False, False, False, False, True, False]
    got = fusion.final_lists(cands, scores, space(), 2, 0.5)
    assert got[C.ITEM_ID].tolist() == ["a", "c", "a", "e"]
    plain = fusion.final_lists(cands.drop(columns=fusion.TAIL_LOOKUP), scores, space(), 2, 0.5)
    assert plain[C.ITEM_ID].tolist() == ["a", "c", "a", "c"]


def test_recommend_gives_new_item_slots_where_a_new_candidate_clears_the_bar() -> None:
    # The fixed blend scores e and f (both new) by their text match: f (5 deg) is close to a
    # buyer of a (0 deg) and b (10 deg), e (180 deg) is opposite. With a bar between the two
    # users' best new scores, only the close match gets a slot; the same share given evenly
    # (one slot in two) shows the far user a new item too.
    sp = space()
    u = users([{"user": "near", "items": ["a", "b"]}, {"user": "far", "items": ["c", "d"]}])
    counts = fusion.CandidateCounts(**{**ONLY, "popularity": 6, "cold_text": 2})
    blocks = list(fusion.scored_blocks(u, sp, counts, None))
    assert len(blocks) == 1
    _, cands, scores = blocks[0]
    new = sp.is_cold[cands["item_idx"].to_numpy()]
    best = {
        user: scores[new & (cands[C.USER_ID].to_numpy() == user)].max() for user in ("near", "far")
    }
    assert best["near"] > best["far"]
    bar = (best["near"] + best["far"]) / 2
    out = fusion.recommend(u, sp, counts, None, fusion.ListShape(2, 0.0, new_slots=(bar, 1)))
    lists = out.groupby(C.USER_ID)[C.ITEM_ID].apply(list).to_dict()
    assert "f" in lists["near"] and not {"e", "f"} & set(lists["far"])
    even = fusion.recommend(u, sp, counts, None, fusion.ListShape(2, 0.0, new_target=0.5))
    lists = even.groupby(C.USER_ID)[C.ITEM_ID].apply(list).to_dict()
    assert "f" in lists["near"] and {"e", "f"} & set(lists["far"])
