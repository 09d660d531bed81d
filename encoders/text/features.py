"""Review-text features on nodes: mean BERT embeddings and near-duplicate (collusion) signals.

Review rings post copied or lightly paraphrased five-star reviews on one merchant's products.
For each review we count the other reviews of the same merchant whose embedding has cosine
above ``threshold``: blocked matrix products within each merchant's reviews, never all pairs
over the whole corpus. The same pass groups the copies: reviews joined by near-duplicate pairs
form one *copy group* (one piece of text copied around a merchant), which ties its authors to
each other far more precisely than "both copied something at this merchant".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from graph import schema
from graph.export import GraphExport


class TextEncoder(Protocol):
    """What this module needs of an encoder (``encoders.text.encoder.ReviewEncoder`` is one)."""

    @property
    def dim(self) -> int: ...

    @property
    def model_id(self) -> str: ...

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray: ...


@dataclass
class TextFeatures:
    """Per node type: mean review embedding (rows aligned with node ids) and scalar signals."""

    embeddings: dict[str, np.ndarray]
    scalars: dict[str, pd.DataFrame]
    review_near_dups: np.ndarray  # per review: near-duplicates on the same merchant
    review_copy_groups: np.ndarray  # per review: its copy group, -1 when it has no near-duplicate


def _mean_by(index: np.ndarray, emb: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, emb.shape[1]), dtype=np.float32)
    if len(index):
        np.add.at(out, index, emb)
        counts = np.bincount(index, minlength=n).astype(np.float32)
        out /= np.maximum(counts, 1.0)[:, None]
    return out


def near_duplicates(
    emb: np.ndarray,
    group: np.ndarray,
    ts: np.ndarray | None = None,
    *,
    threshold: float = 0.92,
    window_ms: int = 30 * 86_400_000,
    block: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: how many other rows of the same group, within ``window_ms`` of it in time, have
    cosine >= ``threshold``; and its copy group.

    Rows are L2-normalised, so cosine is a dot product. Work is O(sum of group sizes squared),
    done in ``block``-row matrix products per group; rows with a negative group are skipped.

    A copy group is a connected component of the near-duplicate pairs (ids dense from 0; -1
    for a row without near-duplicates). To keep memory linear, each row contributes two
    pairs, to its first and its last near-duplicate in the group's order; a clique of copies,
    or a chain of paraphrases, stays one component.
    """
    counts = np.zeros(len(emb), dtype=np.int64)
    copies = np.full(len(emb), -1, dtype=np.int64)
    if len(emb) == 0:
        return counts, copies
    firsts = np.full(len(emb), -1, dtype=np.int64)  # positions in ``order``
    lasts = np.full(len(emb), -1, dtype=np.int64)
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    bounds = np.flatnonzero(np.diff(sorted_group)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(order)]])
    vectors = torch.from_numpy(np.ascontiguousarray(emb[order], dtype=np.float32))
    stamps = np.zeros(len(emb), np.int64) if ts is None else np.asarray(ts, np.int64)[order]
    times = torch.from_numpy(stamps)
    for start, end in zip(starts, ends, strict=True):
        if end - start < 2 or sorted_group[start] < 0:
            continue
        members = vectors[start:end]
        for b in range(start, end, block):
            rows = slice(b, min(b + block, end))
            sims = vectors[rows] @ members.T
            close = (times[rows, None] - times[None, start:end]).abs() <= window_ms
            mask = (sims >= threshold) & close
            own = torch.arange(rows.stop - rows.start)
            mask[own, own + (rows.start - start)] = False  # not a copy of itself
            hits = mask.sum(dim=1)
            counts[order[rows]] = hits.numpy()
            width = mask.shape[1]
            first = mask.to(torch.uint8).argmax(dim=1).numpy() + start
            last = width - 1 - mask.flip(1).to(torch.uint8).argmax(dim=1).numpy() + start
            has = hits.numpy() > 0
            firsts[rows.start : rows.stop] = np.where(has, first, -1)
            lasts[rows.start : rows.stop] = np.where(has, last, -1)
    has = firsts >= 0
    if has.any():
        pos = np.flatnonzero(has)
        src = np.concatenate([pos, pos])
        dst = np.concatenate([firsts[pos], lasts[pos]])
        n = len(order)
        pairs = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n))
        _, label = connected_components(pairs, directed=False)
        dense = np.unique(label[has], return_inverse=True)[1]
        copies[order[pos]] = dense
    return counts, copies


def text_features(
    g: GraphExport, encoder: TextEncoder, *, show_progress: bool = False
) -> TextFeatures:
    """Encode every review once and aggregate onto users, products and merchants."""
    reviews = g.edges[schema.REVIEWED_EDGE]
    texts = reviews["text"].fillna("").astype(str).tolist() if "text" in reviews else []
    emb = encoder.encode(texts, show_progress=show_progress).astype(np.float32)
    emb = emb.reshape(len(texts), encoder.dim)
    users = reviews["src"].to_numpy(np.int64) if len(texts) else np.zeros(0, np.int64)
    products = reviews["dst"].to_numpy(np.int64) if len(texts) else np.zeros(0, np.int64)
    merchant_of = g.merchant_of_product()
    merchants = merchant_of[products]
    n_u, n_p, n_m = (len(g.ids[t]) for t in ("user", "product", "merchant"))
    ts = (
        pd.to_numeric(reviews.get("ts", pd.Series(dtype=float)), errors="coerce")
        .fillna(0)
        .to_numpy(np.int64)
    )
    near, copy_groups = near_duplicates(emb, merchants, ts[: len(texts)])
    has_dup = (near > 0).astype(np.float64)
    user_reviews = np.bincount(users, minlength=n_u).astype(np.float64)
    merchant_reviews = np.bincount(merchants[merchants >= 0], minlength=n_m).astype(np.float64)
    user_max = np.zeros(n_u)
    if len(users):
        np.maximum.at(user_max, users, near.astype(np.float64))
    scalars = {
        "user": pd.DataFrame(
            {
                "near_dup_reviews_max": user_max,
                "near_dup_review_share": np.divide(
                    np.bincount(users, weights=has_dup, minlength=n_u),
                    user_reviews,
                    out=np.zeros(n_u),
                    where=user_reviews > 0,
                ),
            }
        ),
        "merchant": pd.DataFrame(
            {
                "near_dup_review_share": np.divide(
                    np.bincount(
                        merchants[merchants >= 0], weights=has_dup[merchants >= 0], minlength=n_m
                    ),
                    merchant_reviews,
                    out=np.zeros(n_m),
                    where=merchant_reviews > 0,
                )
            }
        ),
    }
    embeddings = {
        "user": _mean_by(users, emb, n_u),
        "product": _mean_by(products, emb, n_p),
        "merchant": _mean_by(merchants[merchants >= 0], emb[merchants >= 0], n_m),
    }
    return TextFeatures(embeddings, scalars, near, copy_groups)
