"""Per planted typology: the GNN's and the baselines' out-of-fold fraud scores of a finished
``riskgraph train --compare`` run, against a generated bundle's truth, from the artifact alone.

    PYTHONPATH=$PWD .venv/bin/python bench/oof_typology.py --truth BUNDLE/truth.csv \\
        [--artifact DIR] [--scores EXPORT.parquet]

The artifact's ``evaluation.parquet`` holds every labelled user's out-of-fold score of each
model on the same grouped folds (``train --compare``), so the table needs no refit: recall at
the threshold that flags 1% of the truly legit labelled users, and AUPRC of each typology's
users against the legit ones (issue 11: the GNN's OOF AUPRC against the best baseline's on
each typology). With ``--scores`` (a ``riskgraph score`` Parquet export), the production
scores of the users without a label are also broken down by typology (GNN only: the
baselines are not fitted for production).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crossfit_bench import typology_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truth", type=Path, required=True, help="bundle truth.csv")
    parser.add_argument("--artifact", type=Path, default=None, help="default: the latest")
    parser.add_argument("--scores", type=Path, default=None, help="score export (Parquet)")
    args = parser.parse_args()
    if args.artifact is None:
        from serving.settings import Settings

        root = Settings().artifacts
        args.artifact = root / (root / "LATEST").read_text().strip()
    evaluation = pd.read_parquet(args.artifact / "evaluation.parquet")
    truth = pd.read_csv(args.truth, dtype={"user_id": str}).set_index("user_id")
    truth = truth.reindex(evaluation["user_id"])
    models = [c.split(":", 1)[1] for c in evaluation.columns if c.startswith("fraud:")]
    scores = {("fraud", m): evaluation[f"fraud:{m}"].to_numpy(np.float64) for m in models}
    everyone = np.arange(len(evaluation))
    y = truth["fraud"].to_numpy(np.float64)
    kinds = truth["typology"].fillna("unknown").to_numpy(str)
    pd.set_option("display.width", 250)
    print(f"OOF fraud by planted typology ({len(evaluation):,} labelled users, truth): "
          "recall at 1% FPR / AUPRC")  # fmt: skip
    print(typology_table(scores, y, kinds, everyone).to_string())
    if args.scores is not None:
        production = pd.read_parquet(args.scores, columns=["user_id", "risk_score"])
        unl = production[~production["user_id"].isin(evaluation["user_id"])]
        full = pd.read_csv(args.truth, dtype={"user_id": str}).set_index("user_id")
        full = full.reindex(unl["user_id"])
        print(f"\nProduction scores of the {len(unl):,} users without a label, by typology "
              "(truth): recall at 1% FPR / AUPRC")  # fmt: skip
        print(typology_table(
            {("fraud", "hetero GNN"): unl["risk_score"].to_numpy(np.float64)},
            full["fraud"].to_numpy(np.float64), full["typology"].fillna("unknown").to_numpy(str),
            np.arange(len(unl)),
        ).to_string())  # fmt: skip
        from training.metrics import binary_metrics

        yu = full["fraud"].to_numpy(np.float64)
        su = unl["risk_score"].to_numpy(np.float64)
        ku = full["typology"].fillna("unknown").to_numpy(str)
        rows = {"all": np.ones(len(yu), dtype=bool)}
        rows |= {f"all but {k}": ku != k for k in sorted(set(ku[yu == 1]))}
        print("\nthe same users, fraud AUROC / AUPRC with and without each typology's frauds")
        for name, keep in rows.items():
            m = binary_metrics(yu[keep], su[keep])
            print(
                f"  {name:28s} {m['auroc']:.3f} / {m['auprc']:.3f}  ({int(yu[keep].sum()):,} frauds)"
            )


if __name__ == "__main__":
    main()
