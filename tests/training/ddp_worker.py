"""One rank of the 2-process DDP test (started by ``torch.distributed.run``, never by pytest).

Usage: ``python -m torch.distributed.run --nproc-per-node 2 tests/training/ddp_worker.py
BUNDLE OUT_DIR SEED``. After every optimiser step the ranks all-gather a parameter checksum;
each rank writes how many steps it saw, how many checksums disagreed, and its test metrics.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from encoders.features import build_features
from graph.bundle import read_bundle
from graph.export import export_from_bundle
from training import distributed
from training.config import TrainConfig
from training.fit import fit

CONFIG = TrainConfig(hidden=16, epochs=12, patience=12, batch_size=128, device="cpu")


def main(bundle: Path, out: Path, seed: int) -> None:
    torch.set_num_threads(1)
    assert distributed.init_from_env(torch.device("cpu"))
    rank, size = distributed.world()
    steps, mismatches = 0, 0

    def check(model: nn.Module) -> None:
        nonlocal steps, mismatches
        mine = torch.tensor([distributed.param_checksum(model)], dtype=torch.float64)
        every = [torch.zeros_like(mine) for _ in range(size)]
        dist.all_gather(every, mine)
        steps += 1
        mismatches += int(any(not torch.equal(every[0], t) for t in every))

    distributed.STEP_HOOKS.append(check)
    g = export_from_bundle(read_bundle(bundle))
    config = TrainConfig(**{**CONFIG.__dict__, "seed": seed})
    result = fit(g, build_features(g, None), config)
    m = result.metrics
    row = {"rank": rank, "steps": steps, "mismatches": mismatches,
           "epochs_run": m["epochs_run"], "best_epoch": m["best_epoch"],
           "auprc": m["fraud"]["auprc"], "auroc": m["fraud"]["auroc"],
           "checksum": distributed.param_checksum(result.model)}  # fmt: skip
    (out / f"rank{rank}.json").write_text(json.dumps(row))
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
