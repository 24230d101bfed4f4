"""Spark item reductions against hand-computed values and a dense numpy reference, and the
Spark-built item space (space_at) against the pandas build_item_space (fusion_reference) on the
same data."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.unit import fusion_reference

from longtail import columns as C
from longtail import fusion
from longtail.config import ItemSpaceConfig
from longtail.item_stats import cooccurrence_pairs, item_statistics
from longtail.stages import fusion_inputs, item_space
from longtail.stages.content import EMBEDDING
from longtail.stages.content import TABLE as EMBEDDINGS
from longtail.stages.train_als import ITEM_FACTORS
from longtail.warehouse.layout import table_path

DS = date(2024, 5, 30)
AS_OF = fusion_inputs.window_end(DS)  # 2024-05-31 00:00 UTC: a 7-day window starts 2024-05-24


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


# (user, item, first_ts, last_ts). u1 has 4 items, and c, d, e tie at its 3rd most recent.
ROWS = [
    ("u1", "a", "2024-05-01", "2024-05-29"),
    ("u1", "c", "2024-05-02", "2024-05-20"),
    ("u1", "d", "2024-05-03", "2024-05-20"),
    ("u1", "e", "2024-05-04", "2024-05-20"),
    ("u2", "a", "2024-05-05", "2024-05-24"),  # exactly the window start: recent
    ("u2", "b", "2024-05-06", "2024-05-23 23:59:59.999999"),  # 1 us before it: not recent
    ("u2", "c", "2024-04-10", "2024-05-25"),
    ("u3", "a", "2024-05-07", "2024-05-10"),
    ("u3", "b", "2024-05-08", "2024-05-30"),
    ("u4", "c", "2024-05-09", "2024-05-11"),
    ("u4", "e", "2024-05-10", "2024-05-26"),
    ("u5", "a", "2024-04-20", "2024-05-28"),
]


def interactions_pd() -> pd.DataFrame:
    df = pd.DataFrame(ROWS, columns=[C.USER_ID, C.ITEM_ID, "first_ts", "last_ts"])
    for col in ("first_ts", "last_ts"):
        df[col] = pd.to_datetime(df[col], utc=True, format="ISO8601")
    df[C.WEIGHT] = 1.0
    df["n_events"] = 1
    df["exclude"] = False
    return df


def dense_reference(inter: pd.DataFrame, cap: int, top: int) -> dict[str, list[tuple[str, float]]]:
    """Neighbours by plain numpy: capped binary user x item matrix, cosine, sorted per row."""
    items = sorted(inter[C.ITEM_ID].unique())
    users = sorted(inter[C.USER_ID].unique())
    x = np.zeros((len(users), len(items)))
    for u, rows in inter.groupby(C.USER_ID):
        recent = sorted(
            zip(rows["last_ts"], rows[C.ITEM_ID], strict=True), key=lambda r: (-r[0].value, r[1])
        )
        for _, item in recent[:cap]:
            x[users.index(u), items.index(item)] = 1.0
    co = x.T @ x
    n = x.sum(axis=0)
    cos = co / np.sqrt(np.outer(n, n))
    out = {}
    for i, item in enumerate(items):
        cands = [(items[j], cos[i, j]) for j in range(len(items)) if j != i and co[i, j] > 0]
        if cands:
            out[item] = sorted(cands, key=lambda p: (-p[1], p[0]))[:top]
    return out


def as_neighbours(pairs: pd.DataFrame) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = {}
    for item, rows in pairs.groupby(C.ITEM_ID):
        rows = rows.sort_values([C.SCORE, fusion.NEIGHBOUR_ID], ascending=[False, True])
        out[item] = list(zip(rows[fusion.NEIGHBOUR_ID], rows[C.SCORE], strict=True))
    return out


def test_item_statistics_count_rows_recent_rows_and_first_interaction(spark: Any) -> None:
    got = item_statistics(spark.createDataFrame(interactions_pd()), AS_OF, 7).toPandas()
    got = got.set_index(C.ITEM_ID).sort_index()
    assert got.index.tolist() == ["a", "b", "c", "d", "e"]
    assert got[fusion.N_USERS].tolist() == [4, 2, 3, 1, 2]
    assert got[fusion.N_RECENT_USERS].tolist() == [3, 1, 1, 0, 1]
    first = pd.to_datetime(got[fusion.FIRST_TS], utc=True).tolist()
    assert first == [
        _ts(t) for t in ("2024-04-20", "2024-05-06", "2024-04-10", "2024-05-03", "2024-05-04")
    ]


@pytest.mark.parametrize(("cap", "top"), [(3, 2), (200, 50)])
def test_cooccurrence_pairs_match_a_dense_reference(spark: Any, cap: int, top: int) -> None:
    inter = interactions_pd()
    got = as_neighbours(cooccurrence_pairs(spark.createDataFrame(inter), top, cap).toPandas())
    want = dense_reference(inter, cap, top)
    assert_same_neighbours(got, want)
    # the same pairs as the pandas path on the same cap and top
    ids = np.array(sorted(inter[C.ITEM_ID].unique()))
    index = {x: i for i, x in enumerate(ids)}
    matrix = fusion_reference.cooccurrence(inter, index, len(ids), top=top, cap=cap)
    pandas_path = as_neighbours(fusion_reference.cooc_pairs_frame(matrix, ids))
    assert {k: [j for j, _ in v] for k, v in pandas_path.items()} == {
        k: [j for j, _ in v] for k, v in got.items()
    }


def by_hand_cap3_top2() -> dict[str, list[tuple[str, float]]]:
    """interactions_pd's neighbours at cap 3, top 2, by hand. Cap 3 drops u1's e (tied with c
    and d at its 3rd most recent, largest id); n: a 4, b 2, c 3, d 1, e 1; c-a 2 / sqrt(12),
    c-d and c-e 1 / sqrt(3): a three-way tie, the smaller ids kept."""
    third = 1 / np.sqrt(3)
    return {
        "a": [("b", 2 / np.sqrt(8)), ("c", third)],
        "b": [("a", 2 / np.sqrt(8)), ("c", 1 / np.sqrt(6))],
        "c": [("a", third), ("d", third)],
        "d": [("c", third), ("a", 0.5)],
        "e": [("c", third)],
    }


def assert_same_neighbours(
    got: dict[str, list[tuple[str, float]]], want: dict[str, list[tuple[str, float]]]
) -> None:
    """The same items, each with the same neighbours in the same order, scores to 1e-12."""
    assert {k: [j for j, _ in v] for k, v in got.items()} == {
        k: [j for j, _ in v] for k, v in want.items()
    }
    for item, neighbours in want.items():
        np.testing.assert_allclose(
            [s for _, s in got[item]], [s for _, s in neighbours], rtol=1e-12
        )


def test_cooccurrence_pairs_by_hand_with_cap_and_ties(spark: Any) -> None:
    pairs = cooccurrence_pairs(spark.createDataFrame(interactions_pd()), top=2, cap=3)
    assert_same_neighbours(as_neighbours(pairs.toPandas()), by_hand_cap3_top2())


def _publish(spark: Any, wh: str, table: str, frame: pd.DataFrame) -> None:
    spark.createDataFrame(frame).write.parquet(table_path(wh, table, DS))


def want_pairs(inter: pd.DataFrame) -> int:
    """Co-occurring ordered pairs of distinct catalogue items (top 50 keeps them all here)."""
    inside = inter[inter[C.ITEM_ID] != "zz"]
    pairs = inside.merge(inside, on=C.USER_ID)
    return len(
        pairs[pairs[C.ITEM_ID + "_x"] != pairs[C.ITEM_ID + "_y"]][
            [C.ITEM_ID + "_x", C.ITEM_ID + "_y"]
        ].drop_duplicates()
    )


def test_space_at_equals_build_item_space_on_the_same_data(spark: Any, tmp_path: Path) -> None:
    wh = str(tmp_path / "wh")
    ids = ["a", "b", "c", "d", "e", "f"]  # f: listed, never interacted (cold)
    first_seen = pd.to_datetime(
        ["2024-01-01", None, None, "2024-05-01", None, "2024-05-20"], utc=True
    )
    cat = pd.DataFrame(
        {
            C.ITEM_ID: ids,
            C.TITLE: [f"title {x}" for x in ids],
            C.CATEGORY: ["x", "y", "x", None, "y", "z"],
            C.PRICE: [1.0, 2.0, np.nan, 4.0, 5.0, 6.0],
            C.FIRST_SEEN: first_seen,
        }
    )
    rng = np.random.default_rng(3)
    emb = pd.DataFrame({C.ITEM_ID: ids, EMBEDDING: [list(rng.normal(size=4)) for _ in ids]})
    fac = pd.DataFrame({C.ITEM_ID: ids[:4], C.FACTORS: [list(rng.normal(size=3)) for _ in ids[:4]]})
    inter = interactions_pd()
    inter = pd.concat([inter, inter.iloc[[0]].assign(**{C.ITEM_ID: "zz"})])  # not in catalogue
    for table, frame in (
        ("catalogue", cat),
        ("interactions", inter),
        (EMBEDDINGS, emb),
        (ITEM_FACTORS, fac),
    ):
        _publish(spark, wh, table, frame)

    # the night's item_space stage reduces the interactions; space_at reads its two tables
    record = item_space.run(spark, ItemSpaceConfig(ds=DS, warehouse=wh))
    assert record["counts"] == {"item_stats": 5, "item_cooccurrence": int(want_pairs(inter))}
    got = fusion_inputs.space_at(spark, wh, DS, head_share=0.6)
    want = fusion_reference.build_item_space(cat, inter, emb, fac, AS_OF, head_share=0.6)

    assert got.item_ids.tolist() == want.item_ids.tolist() == ids
    for name in ("popularity", "recent_popularity", "age_days", "embeddings", "als_factors"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-6, err_msg=name)
    for name in ("is_tail", "is_cold", "has_factors", "category"):
        assert getattr(got, name).tolist() == getattr(want, name).tolist(), name
    assert got.is_cold.tolist() == [False] * 5 + [True]
    assert got.n_categories == want.n_categories
    np.testing.assert_array_equal(got.price, want.price)
    assert got.cooc.dtype == want.cooc.dtype == np.float32
    assert (got.cooc != 0).toarray().tolist() == (want.cooc != 0).toarray().tolist()
    np.testing.assert_allclose(got.cooc.toarray(), want.cooc.toarray(), atol=1e-6)
