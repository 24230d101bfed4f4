"""Catalogues the encoder cannot read: the unknown-token share, and the character n-gram channel
that still finds same-kind products (and cold ones) in Chinese titles."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix

from longtail import columns as C
from longtail import content, fusion, text_ngrams
from longtail.config import ContentConfig

MODEL = "all-MiniLM-L6-v2"

# Product titles by kind; the kind is known by construction, never computed by the code.
TITLES = {
    "cup": [
        "不锈钢保温杯500ml男女便携水杯",
        "304不锈钢真空保温杯大容量",
        "儿童保温杯带吸管防摔",
        "商务保温杯泡茶杯茶水分离",
        "车载保温杯长效保温12小时",
        "迷你保温杯口袋杯200ml",
        "陶瓷内胆保温杯办公室",
    ],
    "phone_case": [
        "苹果15手机壳透明防摔硅胶",
        "华为Mate60手机壳磨砂保护套",
        "小米14手机壳全包软壳",
        "卡通手机壳可爱女款",
        "皮革手机壳商务翻盖",
        "磁吸手机壳支持无线充电",
        "液态硅胶手机壳亲肤",
    ],
    "sneaker": [
        "男士跑步运动鞋透气轻便",
        "女款运动鞋厚底增高休闲",
        "儿童运动鞋魔术贴防滑",
        "篮球运动鞋高帮减震",
        "网面运动鞋夏季透气",
        "气垫运动鞋缓震跑鞋",
        "白色运动鞋百搭板鞋",
    ],
    "earphones": [
        "无线蓝牙耳机降噪入耳式",
        "运动蓝牙耳机挂耳式防汗",
        "头戴式蓝牙耳机重低音",
        "骨传导蓝牙耳机游泳防水",
        "迷你蓝牙耳机超长续航",
    ],
    "shampoo": [
        "去屑洗发水控油清爽",
        "氨基酸洗发水温和无硅油",
        "防脱洗发水生发固发",
        "男士洗发水薄荷清凉",
    ],
}


@pytest.fixture(scope="module", autouse=True)
def offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"


def _vocab() -> set[str]:
    folder = Path(content.resolve_model(MODEL))
    return set((folder / "vocab.txt").read_text(encoding="utf-8").splitlines())


def test_unknown_token_share_matches_the_vocabulary_by_hand() -> None:
    english = content.count_unknown_tokens(["Stainless steel vacuum flask", "Blue teapot"], MODEL)
    assert english.tokens > 0 and english.unknown == 0 and english.unknown_share == 0.0

    # BERT's tokenizer cuts Chinese text into single characters: unknown = not in vocab.txt
    title = "不锈钢保温杯"
    vocab = _vocab()
    by_hand = sum(ch not in vocab for ch in title) / len(title)
    got = content.count_unknown_tokens([title], MODEL)
    assert got.tokens == len(title)
    assert got.unknown_share == pytest.approx(by_hand)
    assert by_hand == pytest.approx(4 / 6)  # 不 and 保 are known; 锈 钢 温 杯 are [UNK]


def test_threshold_warns_and_switches_the_channel_on(tmp_path: Path) -> None:
    from longtail.stages.content import text_report

    cfg = ContentConfig(ds="2026-01-01", warehouse=str(tmp_path))
    english = text_report(["Blue ceramic teapot. Kitchen", "Garden gloves. Garden"], cfg)
    assert english["warnings"] == [] and english["ngram_channel"]["on"] is False
    assert english["unknown_tokens"]["share"] == 0.0

    chinese = text_report([t for kind in TITLES.values() for t in kind], cfg)
    share = chinese["unknown_tokens"]["share"]
    assert share > cfg.unknown_token_warn_share
    assert chinese["ngram_channel"]["on"] is True
    assert len(chinese["warnings"]) == 1 and "unknown to encoder" in chinese["warnings"][0]

    off = ContentConfig(ds="2026-01-01", warehouse=str(tmp_path), ngram_channel="off")
    forced = text_report(["不锈钢保温杯"], off)
    assert forced["ngram_channel"]["on"] is False and len(forced["warnings"]) == 1


def test_same_kind_chinese_titles_are_each_others_nearest_neighbours() -> None:
    titles = [t for kind in TITLES.values() for t in kind]
    kinds = np.array([kind for kind, ts in TITLES.items() for _ in ts])
    x = text_ngrams.vectorise([text_ngrams.ngram_text(t, None, None) for t in titles])
    nb = text_ngrams.neighbours(x, k=3, block_entries=40)  # several blocks of a few rows
    for i in range(len(titles)):
        row = nb.indices[nb.indptr[i] : nb.indptr[i + 1]]
        sims = nb.data[nb.indptr[i] : nb.indptr[i + 1]]
        assert len(row) and i not in row
        top = row[np.lexsort((row, -sims))[0]]
        assert kinds[top] == kinds[i], (titles[i], titles[top])
    # blocking changes nothing, and a second run gives the same bytes
    whole = text_ngrams.neighbours(x, k=3)
    assert (whole != nb).nnz == 0
    again = text_ngrams.vectorise([text_ngrams.ngram_text(t, None, None) for t in titles])
    assert (again != x).nnz == 0


def _space(ids: np.ndarray, cooc: csr_matrix, cold: np.ndarray) -> fusion.ItemSpace:
    """Items whose dense vectors are all alike (what [UNK]-heavy titles give), no factors."""
    n = len(ids)
    counts = np.where(cold, 0.0, 5.0).astype(np.float32)
    return fusion.ItemSpace(
        item_ids=ids,
        embeddings=np.tile(np.array([[1.0, 0.0]], np.float32), (n, 1)),
        als_factors=np.zeros((n, 2), np.float32),
        has_factors=np.zeros(n, bool),
        cooc=cooc,
        popularity=np.log1p(counts),
        recent_popularity=np.log1p(counts),
        age_days=np.where(cold, 1.0, 100.0).astype(np.float32),
        is_tail=np.ones(n, bool),
        is_cold=cold,
        category=np.full(n, -1, np.int32),
        n_categories=0,
        price=np.full(n, np.nan, np.float32),
    )


def _chinese_space(cold_title: str) -> tuple[fusion.ItemSpace, pd.DataFrame]:
    """Two warm cups, a cold item, three warm phone cases."""
    titles = [TITLES["cup"][0], TITLES["cup"][1], cold_title, *TITLES["phone_case"][:3]]
    ids = np.array([f"i{k}" for k in range(6)])
    catalogue = pd.DataFrame({C.ITEM_ID: ids, C.TITLE: titles, C.CATEGORY: [None] * 6})
    cooc = csr_matrix((6, 6), dtype=np.float32)  # nothing bought together
    return _space(ids, cooc, np.array([0, 0, 1, 0, 0, 0], bool)), catalogue


def _history(items: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.USER_ID: ["u"],
            fusion.HIST_ITEMS: [items],
            fusion.HIST_WEIGHTS: [[1.0] * len(items)],
            fusion.HIST_TS: [list(range(len(items)))],
            fusion.EXCLUDED: [items],
            C.FACTORS: [None],
        }
    )


NONE = dict(als=0, content=0, cooccurrence=0, category=0, tail_explorer=0, cold_text=0)


def test_cold_chinese_item_is_found_by_the_ngram_source() -> None:
    space, catalogue = _chinese_space(TITLES["cup"][3])  # the cold item is a cup
    on = text_ngrams.attach(space, catalogue)
    counts = fusion.CandidateCounts(**NONE, popularity=0, text_ngram=1)
    cands = fusion.candidates(_history(["i0", "i1"]), on, counts, on.index)
    assert on.item_ids[cands["item_idx"]].tolist() == ["i2"]
    assert cands[C.SOURCE].tolist() == ["text_ngram"]
    assert cands["text_ngram_profile_sim"].iloc[0] > 0
    assert cands["text_ngram_recent_sim"].iloc[0] > 0
    assert fusion.feature_matrix(cands).shape[1] == len(fusion.FEATURES + fusion.NGRAM_FEATURES)


def test_without_the_channel_nothing_changes() -> None:
    space, _ = _chinese_space(TITLES["cup"][3])
    counts = fusion.CandidateCounts(**NONE, popularity=3, text_ngram=5)
    cands = fusion.candidates(_history(["i0", "i1"]), space, counts, space.index)
    assert "text_ngram" not in set(cands[C.SOURCE])
    assert fusion.frame_features(cands) == fusion.FEATURES
    assert list(cands.columns) == [
        C.USER_ID,
        "item_idx",
        C.SOURCE,
        *fusion.FEATURES,
        fusion.TAIL_LOOKUP,
    ]


def test_similar_items_use_the_ngram_channel_exactly() -> None:
    from longtail.stages.similar_items import SIMILAR_ITEM_ID, similar_block

    titles = [t for kind in TITLES.values() for t in kind]
    kinds = np.array([kind for kind, ts in TITLES.items() for _ in ts])
    n = len(titles)
    ids = np.array([f"z{j:02d}" for j in range(n)])
    cooc = csr_matrix(([0.3, 0.3], ([0, 7], [7, 0])), shape=(n, n), dtype=np.float32)
    space = _space(ids, cooc, np.ones(n, bool))
    on = text_ngrams.attach(space, pd.DataFrame({C.ITEM_ID: ids, C.TITLE: titles}))
    k, w = 3, 1.0
    got = similar_block(np.arange(n), on, k, w, None)  # type: ignore[arg-type]
    x = on.ngram_vectors.toarray().astype(np.float64)  # type: ignore[union-attr]
    score = x @ x.T + w * cooc.toarray()
    for i in range(n):
        mine = got[got["item_id"] == ids[i]]
        want = sorted((j for j in range(n) if j != i), key=lambda j: (-score[i, j], j))[:k]
        assert mine[SIMILAR_ITEM_ID].tolist() == ids[want].tolist()
        np.testing.assert_allclose(mine["score"], score[i, want], atol=1e-5)
        if i not in (0, 7):  # the dense vectors are all alike: the text found the same kind
            assert kinds[want[0]] == kinds[i]
    first = got[got["item_id"] == ids[0]]
    assert first[SIMILAR_ITEM_ID].iloc[0] == ids[7] and first["source"].iloc[0] == "cooccurrence"


def test_ngram_similar_items_never_offer_an_item_that_may_not_be_shown() -> None:
    """The n-gram path keeps the availability mask (a Chinese catalogue switches it on): the
    exhaustive top-k among the items that may be shown."""
    from longtail.stages.similar_items import SIMILAR_ITEM_ID, similar_block

    titles = [t for kind in TITLES.values() for t in kind]
    n = len(titles)
    ids = np.array([f"z{j:02d}" for j in range(n)])
    cooc = csr_matrix((n, n), dtype=np.float32)
    space = _space(ids, cooc, np.ones(n, bool))
    on = text_ngrams.attach(space, pd.DataFrame({C.ITEM_ID: ids, C.TITLE: titles}))
    hidden = {1, 2, 5}
    allowed = np.array([j not in hidden for j in range(n)])
    on = dataclasses.replace(on, allowed=allowed)
    k = 3
    got = similar_block(np.arange(n), on, k, 1.0, None)  # type: ignore[arg-type]
    assert not set(got[SIMILAR_ITEM_ID]) & set(ids[sorted(hidden)])
    x = on.ngram_vectors.toarray().astype(np.float64)  # type: ignore[union-attr]
    score = x @ x.T
    for i in range(n):
        pool = [j for j in range(n) if j != i and allowed[j]]
        want = sorted(pool, key=lambda j: (-score[i, j], j))[:k]
        assert got.loc[got["item_id"] == ids[i], SIMILAR_ITEM_ID].tolist() == ids[want].tolist()
