"""Index-based candidate retrieval against the dense definition it replaced; the index itself."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from tests.unit import dense_reference, fusion_reference

from longtail import columns as C
from longtail import fusion
from longtail.retrieval import VectorIndex, content_neighbours

FEATURES = [f for f in fusion.FEATURES]


def _clustered(n: int, d: int, rng: np.random.Generator, centres: int = 12) -> np.ndarray:
    c = rng.standard_normal((centres, d))
    x = c[rng.integers(0, centres, n)] + 0.6 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def random_shop(
    seed: int, n_items: int = 400, n_users: int = 60
) -> tuple[fusion.ItemSpace, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = np.array([f"i{j:04d}" for j in range(n_items)])
    emb = _clustered(n_items, 16, rng)
    emb[rng.random(n_items) < 0.05] = 0.0  # some items without text
    fac = rng.standard_normal((n_items, 8)).astype(np.float32)
    has_f = rng.random(n_items) < 0.8
    fac[~has_f] = 0.0
    rows = []
    for u in range(n_users):
        n = int(rng.integers(2, 15))
        items = rng.choice(n_items, n, replace=False)
        for k, j in enumerate(items):
            rows.append(
                {
                    C.USER_ID: f"u{u:03d}",
                    C.ITEM_ID: ids[j],
                    C.WEIGHT: float(rng.integers(1, 4)),
                    "last_ts": pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=int(k)),
                    "exclude": bool(rng.random() < 0.7),
                }
            )
    inter = pd.DataFrame(rows)
    inter = inter[np.abs(emb[inter[C.ITEM_ID].str[1:].astype(int)]).sum(axis=1) > 0]
    counts = np.bincount(inter[C.ITEM_ID].str[1:].astype(int), minlength=n_items).astype(float)
    index = {x: i for i, x in enumerate(ids)}
    sp = fusion.ItemSpace(
        item_ids=ids,
        embeddings=emb,
        als_factors=fac,
        has_factors=has_f,
        cooc=fusion_reference.cooccurrence(inter, index, n_items),
        popularity=np.log1p(counts).astype(np.float32),
        recent_popularity=np.log1p(rng.integers(0, 5, n_items)).astype(np.float32),
        age_days=rng.random(n_items).astype(np.float32) * 100,
        is_tail=fusion.head_tail(counts),
        is_cold=counts == 0,
        category=rng.integers(-1, 7, n_items).astype(np.int32),
        n_categories=7,
        price=rng.random(n_items).astype(np.float32),
    )
    users = inter.groupby(C.USER_ID, sort=True)
    frame = pd.DataFrame(
        {
            fusion.HIST_ITEMS: users[C.ITEM_ID].agg(list),
            fusion.HIST_WEIGHTS: users[C.WEIGHT].agg(list),
            fusion.HIST_TS: users["last_ts"].agg(lambda s: list(s.astype("int64") / 1e9)),
            fusion.EXCLUDED: users.apply(
                lambda g: g.loc[g["exclude"], C.ITEM_ID].tolist(), include_groups=False
            ),
        }
    ).reset_index()
    frame[C.FACTORS] = [list(rng.standard_normal(8).astype(np.float32)) for _ in range(len(frame))]
    return sp, frame


BASE_COUNTS = dict(content=12, category=5, tail_explorer=8, cold_text=4, popularity=5)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "sources",
    [
        dict(als=20, cooccurrence=10),
        # shallow overall lists, so that the tail lookups add rows of their own
        dict(als=3, cooccurrence=2, als_tail=8, cooccurrence_tail=6),
    ],
    ids=["overall", "tail-lookups"],
)
def test_exact_retrieval_reproduces_the_dense_candidates(seed: int, sources: dict) -> None:
    sp, users = random_shop(seed)
    counts = fusion.CandidateCounts(**BASE_COUNTS, **sources)
    want = dense_reference.candidates(users, sp, counts, sp.index)
    got = fusion.candidates(users, sp, counts, sp.index, fusion.build_retrieval(sp, counts))
    assert fusion.build_retrieval(sp, counts).method == "exact"
    key = [C.USER_ID, "item_idx"]
    assert got[key].values.tolist() == want[key].values.tolist()
    assert got[C.SOURCE].tolist() == want[C.SOURCE].tolist()
    assert got[fusion.TAIL_LOOKUP].tolist() == want["tail_lookup"].tolist()
    np.testing.assert_allclose(
        got[FEATURES].to_numpy(np.float64), want[FEATURES].to_numpy(np.float64), rtol=0, atol=2e-5
    )


def test_graph_retrieval_finds_most_of_the_exact_candidates() -> None:
    sp, users = random_shop(3, n_items=3000, n_users=80)
    counts = fusion.CandidateCounts()
    exact = fusion.candidates(users, sp, counts, sp.index, fusion.build_retrieval(sp, counts))
    graph_re = fusion.build_retrieval(sp, counts, exact_max_items=0)
    assert graph_re.method == "hnsw"
    graph = fusion.candidates(users, sp, counts, sp.index, graph_re)
    for source in ("als", "content"):
        e = exact[exact[C.SOURCE] == source]
        both = e.merge(graph, on=[C.USER_ID, "item_idx"])
        assert len(e) > 1000 and len(both) / len(e) > 0.9, source
    assert len(exact.merge(graph, on=[C.USER_ID, "item_idx"])) / len(exact) > 0.9
    # whatever a source found, its features are the exact values for that pair
    both = exact.merge(graph, on=[C.USER_ID, "item_idx"], suffixes=("", "_g"))
    for f in ("als_score", "content_profile_sim", "content_recent_sim", "cooccurrence"):
        np.testing.assert_allclose(both[f], both[f + "_g"], atol=2e-5)


def _brute(q: np.ndarray, v: np.ndarray, rows: np.ndarray, k: int, skip: set[int]) -> list[int]:
    s = q @ v[rows].T
    order = sorted(range(len(rows)), key=lambda i: (-s[i], rows[i]))
    return [int(rows[i]) for i in order if int(rows[i]) not in skip][:k]


def test_index_search_honours_subset_and_exclusions() -> None:
    rng = np.random.default_rng(5)
    v = _clustered(2000, 24, rng)
    rows = np.flatnonzero(rng.random(2000) < 0.9)
    subset = rng.random(2000) < 0.6
    q = _clustered(40, 24, rng)
    ex = [np.sort(rng.choice(2000, int(rng.integers(0, 40)), replace=False)) for _ in range(40)]
    for exact_max in (10**9, 0):
        idx = VectorIndex.build(v, rows, exact_max_items=exact_max)
        pos, val = idx.search(q, 10, ex, subset)
        hits = 0
        for r in range(len(q)):
            want = _brute(q[r], v, rows[subset[rows]], 10, set(ex[r].tolist()))
            got = pos[r][pos[r] >= 0].tolist()
            assert set(got) <= set(rows[subset[rows]].tolist()) - set(ex[r].tolist())
            assert list(val[r]) == sorted(val[r], reverse=True)
            if idx.exact:
                assert got == want
            hits += len(set(got) & set(want))
        assert hits / (10 * len(q)) > 0.9


def test_graph_is_the_same_on_every_build_and_survives_pickling() -> None:
    rng = np.random.default_rng(7)
    v = _clustered(1500, 16, rng)
    a = VectorIndex.build(v, np.arange(1500), exact_max_items=0)
    b = VectorIndex.build(v, np.arange(1500), exact_max_items=0)
    assert not a.exact and bytes(a.graph) == bytes(b.graph)
    q = v[:30]
    none = [np.zeros(0, np.int64)] * 30
    c = pickle.loads(pickle.dumps(a))
    assert np.array_equal(a.search(q, 5, none)[0], c.search(q, 5, none)[0])


def test_content_neighbours_start_with_the_item_itself() -> None:
    rng = np.random.default_rng(9)
    v = _clustered(300, 8, rng)
    rows = np.arange(0, 300, 2)
    pos, sims = content_neighbours(VectorIndex.build(v, rows), 4, 300)
    assert (pos[rows, 0] == rows).all()
    assert (pos[1::2] == -1).all()
    want = np.sort(v[rows] @ v[rows].T, axis=1)[:, ::-1][:, :4]
    np.testing.assert_allclose(sims[rows], want, atol=1e-5)


def test_graph_search_keeps_its_subset_across_exclusion_groups() -> None:
    """Queries are searched in groups by how many items they exclude, all under one subset
    selector that only points at its bitmap: every group must still see the subset (a bitmap
    freed after the first group let later groups answer outside it), and the same search twice
    gives the same answers. Many groups of shop-like history lengths, as in a real block."""
    rng = np.random.default_rng(11)
    n = 10_000
    v = _clustered(n, 16, rng)
    subset = rng.random(n) < 0.9
    idx = VectorIndex.build(v, np.arange(n), exact_max_items=0)
    q = _clustered(512, 16, rng)
    ex = [np.sort(rng.choice(n, s, replace=False)) for s in rng.geometric(0.05, len(q))]
    assert len({len(e) for e in ex}) > 40  # many exclusion groups
    first = idx.search(q, 60, ex, subset)
    inside = set(np.flatnonzero(subset).tolist())
    for r in range(len(q)):
        got = first[0][r][first[0][r] >= 0].tolist()
        assert len(got) == 60
        assert set(got) <= inside - set(ex[r].tolist()), r
    for _ in range(3):
        again = idx.search(q, 60, ex, subset)
        assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
