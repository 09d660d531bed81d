"""Do the change features carry over to typologies without labels? A quick check without a GNN.

    PYTHONPATH=$PWD .venv/bin/python bench/change_features_check.py BUNDLE_DIR

Gradient boosting on the users' own behaviour features (no text), fitted on every labelled
user, scores the users without a label; printed: AUROC / AUPRC against the bundle's
``truth.csv`` and AUPRC per planted typology (each typology's frauds against the legit
users), once without the change features (``encoders.behaviour.change_features``) and once
with them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score

from encoders.behaviour import change_features
from encoders.features import build_features
from graph.bundle import read_bundle
from graph.export import export_from_bundle
from serving.pipeline import read_truth


def main() -> None:
    bundle = Path(sys.argv[1])
    g = export_from_bundle(read_bundle(bundle))
    truth = read_truth(bundle / "truth.csv", g)["fraud"]
    typology = (
        pd.read_csv(bundle / "truth.csv", dtype=str)
        .set_index("user_id")["typology"]
        .reindex(pd.Index(g.ids["user"]))
        .fillna("unknown")
        .to_numpy()
    )
    own = build_features(g, None).scalars["user"]
    change = list(change_features(*(np.zeros(1) for _ in range(5))))
    y = g.labels["fraud"].to_numpy(float)
    labelled, unlabelled = ~np.isnan(y), np.isnan(y) & ~np.isnan(truth)
    t, kinds = truth[unlabelled], typology[unlabelled]
    for name, frame in (("without", own.drop(columns=change)), ("with", own)):
        model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=0)
        p = model.fit(frame[labelled], y[labelled]).predict_proba(frame[unlabelled])[:, 1]
        cells = [f"{name} change features: AUROC {roc_auc_score(t, p):.3f} "
                 f"AUPRC {average_precision_score(t, p):.3f}"]  # fmt: skip
        for kind in sorted(set(kinds[t == 1])):
            keep = (t == 0) | (kinds == kind)
            cells.append(f"{kind} {average_precision_score(t[keep], p[keep]):.3f}")
        print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
