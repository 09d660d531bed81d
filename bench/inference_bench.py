"""Full-graph inference: the chunked pass against one single pass, same model, same process.

    OMP_NUM_THREADS=1 .venv/bin/python bench/inference_bench.py --users 1000000

Generates a marketplace (default generator settings, seed 0; reused if ``--out`` exists),
builds the behaviour features (no BERT: memory, not accuracy, is measured here) and runs
one randomly initialised ``HeteroRiskGNN`` over every node twice: first chunked (messages of at
most ``--max-edges`` edges at a time, as validation and scoring run it), then as one
single pass (the baseline), and prints the largest logit difference between the two.

With ``--reasons`` it does the same for the reasons' gradient × input: the blocked reverse
pass (``training.attribution.user_attributions``, as scoring runs it) against one autograd
pass over the whole graph, and the largest difference relative to the largest attribution.

Peak RSS only grows, so ours run first (chunked pass, then blocked reasons) and the
baselines after them; each line shows the peak so far. A baseline that does not fit in
memory is killed by the kernel after ours have printed.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    from training.fit import INFERENCE_MAX_EDGES

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=None, help="bundle folder (kept)")
    parser.add_argument("--max-edges", type=int, default=INFERENCE_MAX_EDGES)
    parser.add_argument("--reasons", action="store_true", help="also time the attributions")
    args = parser.parse_args()

    import numpy as np
    import torch

    from encoders.features import Normaliser, build_features
    from graph.bundle import read_bundle
    from graph.export import export_from_bundle
    from graph.synth.marketplace import GeneratorConfig, generate_marketplace
    from training.inputs import edge_dims, graph_data
    from training.model import HeteroRiskGNN

    out = args.out or Path(f"/tmp/riskgraph-inference-bench-{args.users}")
    started = time.perf_counter()
    if not out.exists():
        generate_marketplace(GeneratorConfig(n_users=args.users, seed=0), out)
    g = export_from_bundle(read_bundle(out))
    features = build_features(g, None)
    y = g.labels["fraud"].to_numpy(np.float64)
    known = np.flatnonzero(~np.isnan(y))
    data = graph_data(g, Normaliser.fit(features, known).transform(features), y, known)
    del g, features
    print(f"generate + export + features {time.perf_counter() - started:.0f} s", flush=True)
    dims = {nt: int(data[nt].x.size(1)) for nt in data.node_types}
    torch.manual_seed(0)
    model = HeteroRiskGNN(dims, list(data.edge_types), edge_dims(data)).eval()
    edges = sum(int(e.size(1)) for e in data.edge_index_dict.values())
    base = _peak_mib()
    print(f"{args.users:,} users, {edges:,} directed edges; peak RSS before: {base:,.0f} MiB")
    started = time.perf_counter()
    with torch.inference_mode():
        chunked = model(data.x_dict, data.edge_index_dict, data.edge_attr_dict,
                        max_edges=args.max_edges)["fraud"]  # fmt: skip
    _line("chunked (ours)", started, base)
    blocked = None
    if args.reasons:
        from training.attribution import user_attributions

        started = time.perf_counter()
        blocked = user_attributions(model, data, args.max_edges)
        _line("reasons blocked (ours)", started, base)
    started = time.perf_counter()
    with torch.inference_mode():
        single = model(data.x_dict, data.edge_index_dict, data.edge_attr_dict)["fraud"]
    _line("single pass", started, base)
    print(f"max |logit difference| {float((chunked - single).abs().max()):.2e}", flush=True)
    if blocked is not None:
        started = time.perf_counter()
        xu = data["user"].x.clone().requires_grad_(True)
        out = model({**data.x_dict, "user": xu}, data.edge_index_dict, data.edge_attr_dict)
        out["fraud"].sum().backward()
        assert xu.grad is not None
        whole = (xu.grad * xu).detach().numpy()
        _line("reasons whole-graph autograd", started, base)
        scale = max(float(np.abs(whole).max()), 1e-30)
        print(f"max |attribution difference| / max |attribution| "
              f"{float(np.abs(blocked - whole).max()) / scale:.2e}")  # fmt: skip


def _line(name: str, started: float, base: float) -> None:
    print(f"{name:>28}: {time.perf_counter() - started:6.1f} s, peak RSS "
          f"{_peak_mib():,.0f} MiB (+{_peak_mib() - base:,.0f})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
