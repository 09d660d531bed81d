"""The model's input graph: normalised node features, edge attributes and visible labels.

Besides its own features, each user carries two label inputs (the *label trick* of UniMP /
"Bag of Tricks for Node Classification"): whether its fraud label is visible to the model and,
if so, its value. Known fraud is the strongest evidence there is about an account's
neighbours ("shares a device with 3 confirmed fraud"), and message passing carries it there.
A user's own label is never visible when it is a training target or a held-out user: training
hides a random part of the training labels each epoch and learns to predict exactly those,
evaluation shows only training labels, and scoring shows every observed label.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import HeteroData

from encoders.edge_features import edge_attributes
from graph.export import GraphExport
from graph.schema import EdgeType

LABEL_INPUTS = ("label_fraud_visible", "label_visible")


def label_inputs(y_fraud: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """``(n_users, 2)`` float32: [fraud label where visible else 0, 1 where visible].

    Args:
        y_fraud: observed fraud label per user (1/0/NaN).
        visible: boolean mask or index array of users whose label the model may see.
    """
    mask = np.zeros(len(y_fraud), dtype=bool)
    mask[visible] = True
    mask &= ~np.isnan(y_fraud)
    out = np.zeros((len(y_fraud), 2), dtype=np.float32)
    out[mask, 0] = y_fraud[mask]
    out[mask, 1] = 1.0
    return out


def graph_data(
    g: GraphExport, x: dict[str, np.ndarray], y_fraud: np.ndarray, visible: np.ndarray
) -> HeteroData:
    """``HeteroData`` with ``x`` per node type (users get the label inputs appended last),
    ``edge_index`` and ``edge_attr`` per non-empty edge type. Lives on the CPU; move with
    ``.to(device)``.
    """
    data = HeteroData()
    for nt, values in x.items():
        if nt == "user":
            values = np.hstack([values, label_inputs(y_fraud, visible)])
        data[nt].x = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    attrs = edge_attributes(g)
    for et in g.data.edge_types:
        edge_index = g.data[et].edge_index
        if edge_index.numel() == 0:
            continue
        data[et].edge_index = edge_index
        if et in attrs:
            data[et].edge_attr = torch.from_numpy(attrs[et])
    return data


def set_visible_labels(data: HeteroData, y_fraud: np.ndarray, visible: np.ndarray) -> None:
    """Overwrite the users' label inputs in place (on whatever device ``data`` lives)."""
    x = data["user"].x
    x[:, -len(LABEL_INPUTS) :] = torch.from_numpy(label_inputs(y_fraud, visible)).to(x.device)


def edge_dims(data: HeteroData) -> dict[EdgeType, int]:
    """Width of the edge attributes per edge type (0 where there are none)."""
    return {
        et: int(data[et].edge_attr.size(1)) if "edge_attr" in data[et] else 0
        for et in data.edge_types
    }
