"""``--nproc N``: start the same command as N ``torchrun`` ranks (``torch.distributed.run``).

The CLI does not spawn or coordinate processes itself: it hands its own command line (minus
``--nproc``) to PyTorch's elastic launcher, exactly what ``torchrun --nproc-per-node N -m
serving.cli …`` does, so a cluster scheduler can start the same ranks on several machines
with ``torchrun --nnodes``. Ranks learn who they are from ``RANK``/``WORLD_SIZE``.
"""

from __future__ import annotations

import os
import socket
import sys


def strip_nproc(argv: list[str]) -> list[str]:
    """The command line without ``--nproc N`` / ``--nproc=N`` (the ranks must not relaunch)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def free_port() -> int:
    """A TCP port free on this machine now, for the ranks' rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_ranks(nproc: int, argv: list[str] | None = None) -> None:
    """Run ``python -m serving.cli <argv without --nproc>`` as ``nproc`` ranks on this machine.

    Raises ``ChildFailedError`` (torch's) naming the rank that failed, if any did.
    """
    from torch.distributed.run import get_args_parser, run

    if nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {nproc}")
    args = strip_nproc(list(sys.argv[1:] if argv is None else argv))
    port = os.environ.get("MASTER_PORT") or str(free_port())
    addr = os.environ.get("MASTER_ADDR", "127.0.0.1")
    parsed = get_args_parser().parse_args(
        [f"--nproc-per-node={nproc}", f"--master-addr={addr}", f"--master-port={port}",
         "-m", "serving.cli", *args]
    )  # fmt: skip
    run(parsed)


def is_rank() -> bool:
    """True inside a rank started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` -> ``(I, N)``; none given: this rank's shard under torchrun, else None."""
    if text is None:
        if is_rank():
            return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        return None
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: write I/N, e.g. 0/4 (shards count from 0)") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: need 0 <= I < N")
    return i, n
