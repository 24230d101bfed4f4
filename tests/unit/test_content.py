"""The pretrained encoder loads offline from the installed package; the cache skips known texts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from longtail import columns as C
from longtail import content


@pytest.fixture(scope="module", autouse=True)
def offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def test_packaged_model_resolves_to_a_local_folder() -> None:
    path = Path(content.resolve_model("all-MiniLM-L6-v2"))
    assert path.is_dir() and (path / "config.json").exists()
    with pytest.raises(content.EncoderNotFound):
        content.resolve_model("some-org/not-installed-model")


def test_encoder_is_deterministic_normalised_and_semantic() -> None:
    texts = ["Ceramic blue teapot 1L", "Stainless steel electric kettle", "Cotton garden gloves"]
    a = content.embed(texts, "all-MiniLM-L6-v2", device="cpu")
    b = content.embed(texts, "all-MiniLM-L6-v2", device="cpu")
    assert a.shape == (3, 384) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert a[0] @ a[1] > a[0] @ a[2]  # a teapot is closer to a kettle than to gloves


def test_item_text_and_hash() -> None:
    assert content.item_text("Teapot", "Kitchen", None, float("nan")) == "Teapot. Kitchen"
    assert content.item_text("x" * 50, None, None, None, max_chars=16) == "x" * 16
    h1 = content.text_hash("Teapot", "m1")
    assert h1 == content.text_hash("Teapot", "m1") != content.text_hash("Teapot", "m2")


def _catalogue(spark: Any, wh: str, ds: str, titles: dict[str, str]) -> None:
    from longtail.warehouse.publish import write_audit_publish

    pdf = pd.DataFrame(
        {
            C.ITEM_ID: list(titles),
            C.TITLE: list(titles.values()),
            C.DESCRIPTION: [None] * len(titles),
            C.CATEGORY: ["Kitchen"] * len(titles),
            C.BRAND: [None] * len(titles),
            C.PRICE: [1.0] * len(titles),
            C.FIRST_SEEN: [None] * len(titles),
        }
    )
    schema = (
        "item_id string, title string, description string, category string, brand string, "
        "price double, first_seen date"
    )
    write_audit_publish(
        spark.createDataFrame(pdf, schema), wh, "catalogue", pd.Timestamp(ds).date()
    )


def test_cache_embeds_each_text_once_across_nights(spark: Any, tmp_path: Path) -> None:
    from longtail.config import ContentConfig
    from longtail.stages import content as stage

    wh = str(tmp_path / "wh")
    _catalogue(spark, wh, "2026-01-01", {"i1": "Blue teapot", "i2": "Red mug"})
    first = stage.run(spark, ContentConfig(ds="2026-01-01", warehouse=wh))
    assert first["counts"] == {"items": 2, "embedded_now": 2, "from_cache": 0}
    assert first["unknown_tokens"]["share"] == 0.0 and first["warnings"] == []
    assert first["ngram_channel"]["mode"] == "auto" and first["ngram_channel"]["on"] is False

    # next night: i2 unchanged, i1 retitled, i3 new -> only two texts are embedded
    _catalogue(spark, wh, "2026-01-02", {"i1": "Blue teapot 1L", "i2": "Red mug", "i3": "Fork"})
    second = stage.run(spark, ContentConfig(ds="2026-01-02", warehouse=wh))
    assert second["counts"] == {"items": 3, "embedded_now": 2, "from_cache": 1}

    # a re-run of the same night recomputes only that night's additions, same vectors
    again = stage.run(spark, ContentConfig(ds="2026-01-02", warehouse=wh))
    assert again["counts"] == second["counts"]
    vectors = pd.read_parquet(f"{wh}/item_embeddings/ds=2026-01-02").sort_values(C.ITEM_ID)
    assert vectors[C.ITEM_ID].tolist() == ["i1", "i2", "i3"]
    direct = content.embed(["Red mug. Kitchen"], "all-MiniLM-L6-v2", device="cpu")[0]
    assert np.allclose(np.asarray(vectors.iloc[1]["embedding"]), direct, atol=1e-5)


def test_default_vectors_do_not_depend_on_batch_companions() -> None:
    """Backfills and re-runs embed different sets of texts; a text's vector must not move."""
    from longtail.config import ContentConfig

    cfg = ContentConfig(ds="2024-05-01", warehouse="/tmp/unused")
    texts = ["Blue ceramic mug", "A much longer title: stainless steel travel kettle, 1.7 litres"]
    texts += [f"Notebook, A{i} ruled, {i * 40} pages" for i in range(3, 9)]
    together = content.embed(texts, cfg.model, "cpu", cfg.batch_size)
    for i in (0, 1, 5):
        alone = content.embed([texts[i]], cfg.model, "cpu", cfg.batch_size)
        assert np.array_equal(alone[0], together[i]), texts[i]
    reordered = content.embed(texts[::-1], cfg.model, "cpu", cfg.batch_size)
    assert np.array_equal(reordered[::-1], together)


def test_a_partition_is_encoded_whole_with_the_same_vectors() -> None:
    """Arrow hands a partition over in batches; they are encoded as one, one frame out, and every
    vector is the one the text gets alone."""
    from longtail.config import ContentConfig

    cfg = ContentConfig(ds="2024-05-01", warehouse="/tmp/unused")
    texts = ["Blue ceramic mug", "Red ceramic mug", "Green ceramic mug", "Oak desk lamp"]
    frame = pd.DataFrame({"text_hash": [f"h{i}" for i in range(4)], "text": texts})
    arrow_batches = [frame.iloc[:1], frame.iloc[1:3], frame.iloc[3:0], frame.iloc[3:]]
    out = list(content.embed_batches(iter(arrow_batches), cfg.model, "cpu", cfg.batch_size))
    assert len(out) == 1 and out[0]["text_hash"].tolist() == ["h0", "h1", "h2", "h3"]
    for text, vector in zip(texts, out[0]["embedding"], strict=True):
        assert np.array_equal(vector, content.embed([text], cfg.model, "cpu", cfg.batch_size)[0])
    assert list(content.embed_batches(iter([frame.iloc[:0]]), cfg.model, "cpu", 32)) == []


def test_bfloat16_vectors_are_near_float32_and_keep_their_own_bytes() -> None:
    """precision=bfloat16 trades the last bits for speed: each vector stays within a cosine of
    1e-4 of float32's, is still a function of its text alone, and is keyed apart from float32."""
    texts = ["Ceramic blue teapot 1L", "Stainless steel electric kettle", "Cotton garden gloves"]
    texts += [f"Notebook, A{i} ruled, {i * 40} pages" for i in range(3, 9)]
    f32 = content.embed(texts, "all-MiniLM-L6-v2", "cpu", 8)
    b16 = content.embed(texts, "all-MiniLM-L6-v2", "cpu", 8, precision="bfloat16")
    assert b16.shape == f32.shape and b16.dtype == np.float32
    assert np.allclose(np.linalg.norm(b16, axis=1), 1.0, atol=1e-5)
    assert ((b16 * f32).sum(axis=1) > 0.9999).all() and not np.array_equal(b16, f32)
    assert b16[0] @ b16[1] > b16[0] @ b16[2]
    for i in (0, 4):
        alone = content.embed([texts[i]], "all-MiniLM-L6-v2", "cpu", 8, precision="bfloat16")
        assert np.array_equal(alone[0], b16[i]), texts[i]
    with pytest.raises(ValueError, match="precision"):
        content.embed(texts, "all-MiniLM-L6-v2", "cpu", 8, precision="float16")


def test_encoder_key_leaves_float32_hashes_as_they_were() -> None:
    import hashlib

    model = "all-MiniLM-L6-v2"
    old = hashlib.sha256(f"{model}\x00Red mug".encode()).hexdigest()
    assert content.text_hash("Red mug", content.encoder_key(model, "float32")) == old
    assert content.encoder_key(model, "bfloat16") == f"{model}@bfloat16"
    assert content.text_hash("Red mug", content.encoder_key(model, "bfloat16")) != old
    from longtail.config import ConfigError, ContentConfig

    with pytest.raises(ConfigError, match="precision"):
        ContentConfig(ds="2024-05-01", warehouse="/tmp/unused", precision="float16")


def test_a_bfloat16_night_embeds_into_its_own_cache(spark: Any, tmp_path: Path) -> None:
    """A night switched to bfloat16 does not read float32 vectors from the cache (nor the other
    way round): it embeds every text again, into its own cache folder."""
    from longtail.config import ContentConfig
    from longtail.stages import content as stage

    wh = str(tmp_path / "wh")
    _catalogue(spark, wh, "2026-01-01", {"i1": "Blue teapot", "i2": "Red mug"})
    stage.run(spark, ContentConfig(ds="2026-01-01", warehouse=wh))
    f32 = pd.read_parquet(f"{wh}/item_embeddings/ds=2026-01-01").sort_values(C.ITEM_ID)
    _catalogue(spark, wh, "2026-01-02", {"i1": "Blue teapot", "i2": "Red mug"})
    night = stage.run(spark, ContentConfig(ds="2026-01-02", warehouse=wh, precision="bfloat16"))
    assert night["counts"] == {"items": 2, "embedded_now": 2, "from_cache": 0}
    assert night["precision"] == "bfloat16"
    cache = Path(wh) / "_cache" / "embeddings"
    assert sorted(p.name for p in cache.iterdir()) == [
        "model=all-MiniLM-L6-v2",
        "model=all-MiniLM-L6-v2_bfloat16",
    ]
    b16 = pd.read_parquet(f"{wh}/item_embeddings/ds=2026-01-02").sort_values(C.ITEM_ID)
    for a, b in zip(f32[C.EMBEDDING], b16[C.EMBEDDING], strict=True):
        assert float(np.dot(a, b)) > 0.9999
    assert set(f32[C.TEXT_HASH]).isdisjoint(b16[C.TEXT_HASH])


def test_token_counts_are_the_encoders_lengths_without_special_tokens() -> None:
    from longtail.config import ContentConfig

    model = ContentConfig(ds="2024-05-01", warehouse="/tmp/unused").model
    texts = ["Blue ceramic mug", "stainless steel travel kettle, 1.7 litres", "x"]
    encoder = content.load_encoder(model, "cpu")
    # [CLS] and [SEP] around every text; none of these is truncated
    expected = content.token_lengths(encoder, texts) - 2
    assert content.token_counts(texts, model).tolist() == expected.tolist()
    assert content.token_counts(["Blue ceramic mug"], model).tolist() == [3]


def test_balanced_parts_keep_lengths_whole_and_even_out_the_work() -> None:
    # Work per length, batch 4: ceil(count / 4) * 4 * (length + 2).
    # length 10 x5 -> 2 batches * 4 * 12 = 96; length 30 x1 -> 4 * 32 = 128;
    # length 5 x8 -> 2 * 4 * 7 = 56; length 6 x1 -> 4 * 8 = 32.
    lengths = np.array([10] * 5 + [30] + [5] * 8 + [6])
    part = content.balanced_parts(lengths, parts=2, batch_size=4)
    # largest first to the least loaded: 30 -> p0 (128); 10 -> p1 (96); 5 -> p1 (152);
    # 6 -> p0 (160)
    expected = {30: 0, 10: 1, 5: 1, 6: 0}
    assert part.tolist() == [expected[n] for n in lengths.tolist()]
    # a median split by rows (lengths 5 and 6 | 10 and 30) would leave 88 against 224
    assert content.balanced_parts(lengths, parts=1, batch_size=4).tolist() == [0] * len(lengths)
    assert content.balanced_parts(np.array([], np.int64), 2, 4).tolist() == []
    # a function of the lengths alone: the order of the texts does not move a length's part
    shuffled = lengths[::-1]
    again = content.balanced_parts(shuffled, parts=2, batch_size=4)
    assert again.tolist() == [expected[n] for n in shuffled.tolist()]


def test_encoding_input_puts_each_part_in_its_own_partition(spark: Any) -> None:
    from longtail.stages import content as stage

    todo = pd.DataFrame({"text_hash": [f"h{i}" for i in range(6)], "text": list("abcdef")})
    part = np.array([2, 0, 2, 1, 0, 2])
    frame = stage.encoding_input(spark, todo, part, 3)
    got = frame.rdd.glom().map(lambda rows: sorted(r["text_hash"] for r in rows)).collect()
    assert got == [["h1", "h4"], ["h3"], ["h0", "h2", "h5"]]
