"""Data-parallel training on ``torch.distributed``: the engine PyTorch ships, not a home-made one.

Ranks are started by ``torchrun`` (``torch.distributed.run``), which sets ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_from_env` joins the process
group (gloo on CPU, NCCL on CUDA). Every rank holds the same graph and draws the same
per-epoch permutation of the training users (same seed), then keeps its own equal-sized slice
of it (:func:`rank_slice`), so each rank runs the same number of steps (DDP's all-reduce needs
every rank at every step) and the slices never overlap. DDP all-reduces the gradients, so the
parameters stay identical; the early-stopping metric is rank 0's, broadcast
(:func:`agree`), so every rank stops at the same epoch and keeps the same best state.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

StepHook = Callable[[nn.Module], None]
STEP_HOOKS: list[StepHook] = []
"""Called with the (unwrapped) model after every optimiser step while distributed; tests use
it to all-gather a parameter checksum and prove the ranks never diverge."""


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` when no process group is up."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_distributed() -> bool:
    return world()[1] > 1


def init_from_env(device: torch.device | None = None) -> bool:
    """Join the process group ``torchrun`` described in the environment, if any.

    Returns True when this process is one rank of several. NCCL when the device is CUDA (each
    rank on ``cuda:LOCAL_RANK``), gloo otherwise.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        cuda = device is not None and device.type == "cuda"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    return True


def rank_device(device: torch.device) -> torch.device:
    """On CUDA each rank uses its local GPU; otherwise the given device."""
    if device.type == "cuda" and is_distributed():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def rank_slice(users: np.ndarray) -> np.ndarray:
    """This rank's contiguous, equal-sized part of an (already shuffled) seed array.

    The remainder (fewer than ``world_size`` users) is dropped for this epoch, as
    ``DistributedSampler(drop_last=True)`` does; the next epoch's permutation differs, so no
    user is left out for good.
    """
    rank, size = world()
    if size == 1:
        return users
    per = len(users) // size
    return users[rank * per : (rank + 1) * per]


def agree(value: float) -> float:
    """Rank 0's value on every rank (decisions such as early stopping must be identical)."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.broadcast(t, src=0)
    return float(t.item())


def wrap(model: nn.Module) -> nn.Module:
    """The model under DDP when distributed, else itself.

    ``find_unused_parameters``: a sampled batch may lack a relation, so its parameters get no
    gradient on that rank; DDP then contributes zeros for them instead of waiting forever.
    """
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    dev = next(model.parameters()).device
    ids = [dev] if dev.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def after_step(model: nn.Module) -> None:
    for hook in STEP_HOOKS:
        hook(model)


def param_checksum(model: nn.Module) -> float:
    """Sum of every parameter in float64 (with a position weight, so swaps show too)."""
    total = 0.0
    for i, p in enumerate(model.parameters(), start=1):
        total += i * float(p.detach().double().sum())
    return total


def is_main() -> bool:
    """Rank 0 (or no process group): the one that saves artifacts and prints; read from
    ``RANK`` when the group is already down, so the answer holds after :func:`shutdown`."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
