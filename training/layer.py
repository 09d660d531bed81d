"""The one definition of a message-passing layer's combine step and of the score heads.

The full forward pass (``HeteroRiskGNN.encode``), the blocked forward pass
(``training.blocks``) and the reasons' reverse pass (``training.attribution``) all call
these, so a change to the architecture (another activation, a gate, a wider head input) is
one edit, and the exactness tests that compare the three guard it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def combine(norm: nn.Module, dropout: nn.Module, h: Tensor, messages: Tensor) -> Tensor:
    """A node type's next state from its state ``h`` and its relations' summed ``messages``:
    residual (so a node's own features survive message passing), then LayerNorm.

    A node type that received no messages keeps ``h`` unchanged; callers skip it.
    """
    out: Tensor = norm(h + dropout(torch.relu(messages)))
    return out


def head_input(h0_user: Tensor, h_user: Tensor) -> Tensor:
    """What a user's heads read: the input projection beside the final embedding, so a
    user's own features reach the heads even where message passing washed them out."""
    return torch.cat([h0_user, h_user], dim=-1)


def score_head(hidden: int) -> nn.Module:
    """One head (fraud or default): a two-layer MLP from ``head_input`` to a logit."""
    return nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
