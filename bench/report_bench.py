"""``riskgraph report`` page building at scale: inline SVG figures (what the command writes)
next to the same page with base64 PNG figures (the usual way to make a page self-contained),
in the same process, on the same run data.

Usage: ``.venv/bin/python bench/report_bench.py --users 100000 [--rounds 2]``, or on a real
scored graph (the configured Neo4j and ``RISKGRAPH_STATE_DIR``, after ``riskgraph score``
twice and ``riskgraph rings``): ``.venv/bin/python bench/report_bench.py --real [--rounds 2]``.

The run data is synthetic but shaped like ``serving.report.snapshot`` writes it (users with
score, band, labels, country, account age, neighbourhood group, degrees and 30 behaviour
features; merchants; devices; rings; an evaluation frame with three baselines; six rings of
30 members for the gallery), for this run and a shifted previous run. Timed: reading the
Parquet files back (``RunFiles.read``) and rendering the page. The Neo4j reads of the
command (ring table, counts, six rings) are not included; on the test graph they take well
under a second.

``--real`` times the command's own body instead (what ``serving.report.command.build_report``
does: Neo4j reads, both runs' files, rendering, writing the page) on whatever run the settings
point at, split into gathering (``load_report_data``) and rendering, with the same
PNG-figure baseline; it prints the run's size and this process's peak RSS.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from graph.neo4j.runs import ScoreRun
from serving.report import figures
from serving.report.data import ReportData, RunFiles
from serving.report.figures import RingDrawing
from serving.report.page import render
from serving.report.snapshot import age_group

COUNTRIES = np.array(["US", "GB", "DE", "FR", "BR", "IN", "ES", "PL", "NG", "MX"])


def run_files(folder: Path, n: int, seed: int, shift: float) -> RunFiles:
    rng = np.random.default_rng(seed)
    bad_p = 1 / (1 + np.exp(-(rng.normal(-3, 1.5, n) + shift)))
    credit = np.clip(600 - 80 * np.log(bad_p / (1 - bad_p)) / 3, 300, 850).round()
    labelled = rng.random(n) < 0.6
    fraud = np.where(labelled, (rng.random(n) < bad_p).astype(float), np.nan)
    users = pd.DataFrame({
        "user_id": [f"U{i}" for i in range(n)], "risk_score": bad_p, "bad_probability": bad_p,
        "credit_score": credit,
        "risk_band": pd.cut(credit, [0, 500, 580, 670, 740, 900],
                            labels=["very high", "high", "medium", "low", "very low"]).astype(str),
        "top_reason": rng.choice(["chargeback_rate", "account_age_days", "shared_device",
                                  "night_share", ""], n),
        "fraud": fraud, "default": np.where(labelled, (rng.random(n) < 0.05).astype(float), np.nan),
        "country": rng.choice(COUNTRIES, n, p=np.linspace(2, 0.5, 10) / np.linspace(2, 0.5, 10).sum()),
        "age_group": age_group(rng.exponential(300, n)),
        "neighbour_group": rng.choice(["mixed", "US", "GB"], n, p=[0.6, 0.3, 0.1]),
        "neighbour_share": rng.random(n), "deg_devices": rng.poisson(1.5 + shift, n),
        "deg_merchants": rng.poisson(4, n),
    })  # fmt: skip
    for i in range(30):
        users[f"f_feature_{i}"] = rng.normal(shift * (i % 3), 1, n).astype(np.float32)
    folder.mkdir(parents=True)
    users.to_parquet(folder / "users.parquet", index=False)
    m = max(n // 50, 10)
    pd.DataFrame({"merchant_id": [f"M{i}" for i in range(m)], "risk_score": rng.random(m),
                  "orders": rng.poisson(40, m)}).to_parquet(folder / "merchants.parquet")  # fmt: skip
    pd.DataFrame({"device_id": [f"D{i}" for i in range(n)], "users": rng.poisson(1.2, n)}
                 ).to_parquet(folder / "devices.parquet")  # fmt: skip
    pd.DataFrame({"ring_id": [f"ring-{i}" for i in range(n // 1000)],
                  "size": rng.integers(3, 40, n // 1000)}).to_parquet(folder / "rings.parquet")  # fmt: skip
    (folder / "run.json").write_text("{}")
    run = ScoreRun(f"run-{seed}", f"model-{seed}", "2026-12-03T10:00:00Z", "complete")
    return RunFiles.read(folder, run)


def report_data(work: Path, n: int) -> ReportData:
    current = run_files(work / "cur", n, 1, 0.3)
    previous = run_files(work / "prev", n, 2, 0.0)
    rng = np.random.default_rng(3)
    users = current.users
    labelled = users[~users["fraud"].isna()]
    evaluation = pd.DataFrame({"user_id": labelled["user_id"], "fraud": labelled["fraud"],
                               "default": labelled["default"]})  # fmt: skip
    for head in ("fraud", "default"):
        truth = evaluation[head].to_numpy()
        for name, noise in (("hetero GNN", 0.6), ("logistic regression", 0.9),
                            ("gradient boosting (own)", 0.8), ("gradient boosting (nbr)", 0.7)):  # fmt: skip
            logit = truth * 2 + rng.normal(0, noise * 2, len(truth))
            evaluation[f"{head}:{name}"] = 1 / (1 + np.exp(-logit + 1))
    rings = pd.DataFrame({"ring_id": [f"ring-{i}" for i in range(20)], "status": "new",
                          "size": 30, "risk_mean": rng.random(20), "exposure_amount": 1000.0,
                          "chargeback_amount": 10.0, "evidence_device": 5, "weight": 1.0})  # fmt: skip
    gallery = [
        RingDrawing(f"ring-{i}", pd.DataFrame({"user_id": [f"U{j}" for j in range(30)],
                                              "risk": rng.random(30)}),
                    pd.DataFrame({"kind": ["Device", "Merchant"], "id": ["D1", "M1"]}),
                    pd.DataFrame({"user_id": [f"U{j}" for j in range(30)], "id": "D1"}))
        for i in range(6)
    ]  # fmt: skip
    model = {"train": {"split": "crossfit", "folds": 5}, "created_at": "2026-12-03"}
    return ReportData(current, previous, model, evaluation, {"User": n}, rings, gallery)


FORMATS = (("svg (riskgraph report)", "svg"), ("png base64 (baseline)", "png"))


def real(rounds: int) -> None:
    """Time ``build_report`` on the configured graph's latest complete run (see the docstring)."""
    import resource

    from serving.connect import open_store
    from serving.report.data import load_report_data
    from serving.settings import Settings

    settings = Settings()
    rows: dict[str, list[tuple[float, float, float, int]]] = {name: [] for name, _ in FORMATS}
    with open_store(settings) as store, tempfile.TemporaryDirectory(prefix="report-real-") as tmp:
        data = load_report_data(store, settings.state_dir)  # warm-up: page cache, imports
        previous = data.previous.run.run_id if data.previous else "none"
        print(f"run {data.current.run.run_id} (model {data.current.run.version}): "
              f"{len(data.current.users):,} users, previous run {previous}, "
              f"{len(data.rings):,} open rings, {0 if data.evaluation is None else len(data.evaluation):,} evaluated users")  # fmt: skip
        for r in range(rounds):
            for name, fmt in FORMATS:
                figures.INLINE_FORMAT = fmt
                started = time.perf_counter()
                data = load_report_data(store, settings.state_dir)
                gathered = time.perf_counter() - started
                html = render(data)
                rendered = time.perf_counter() - started - gathered
                out = Path(tmp) / f"{r}-{fmt}.html"
                out.write_text(html, encoding="utf-8")  # as build_report writes it
                total = time.perf_counter() - started
                rows[name].append((gathered, rendered, total, out.stat().st_size))
    figures.INLINE_FORMAT = "svg"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"{rounds} rounds; total = the command's body (gather + render + write the page)")
    print(f"{'figures':<26}{'gather s':>9}{'render s':>9}{'best s':>8}{'mean s':>8}{'page MB':>9}")
    for name, got in rows.items():
        totals = [t for _, _, t, _ in got]
        print(f"{name:<26}{min(g for g, _, _, _ in got):>9.2f}{min(r for _, r, _, _ in got):>9.2f}"
              f"{min(totals):>8.2f}{np.mean(totals):>8.2f}{got[-1][3] / 1e6:>9.2f}")  # fmt: skip
    print(f"peak RSS of this process: {peak:.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--real", action="store_true",
                        help="time the command on the configured graph's latest run instead")  # fmt: skip
    args = parser.parse_args()
    if args.real:
        return real(args.rounds)
    results: dict[str, list[tuple[float, int]]] = {"svg (riskgraph report)": [],
                                                   "png base64 (baseline)": []}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        for r in range(args.rounds):
            for name, fmt in FORMATS:
                figures.INLINE_FORMAT = fmt
                folder = Path(tmp) / f"{r}-{fmt}"
                data = report_data(folder, args.users)  # untimed: synthesis and writing
                started = time.perf_counter()
                data.current = RunFiles.read(folder / "cur", data.current.run)
                assert data.previous is not None
                data.previous = RunFiles.read(folder / "prev", data.previous.run)
                html = render(data)
                results[name].append((time.perf_counter() - started, len(html.encode())))
    figures.INLINE_FORMAT = "svg"
    print(
        f"{args.users:,} users (and a previous run of as many), {args.rounds} rounds; "
        "timed: reading both runs' files, then rendering"
    )
    print(f"{'figures':<26}{'best s':>8}{'mean s':>8}{'page MB':>9}")
    for name, rows in results.items():
        times = [t for t, _ in rows]
        print(f"{name:<26}{min(times):>8.2f}{np.mean(times):>8.2f}{rows[-1][1] / 1e6:>9.2f}")


if __name__ == "__main__":
    main()
