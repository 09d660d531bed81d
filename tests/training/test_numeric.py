"""The users' piecewise-linear feature encoding (training/numeric.py)."""

from __future__ import annotations

import numpy as np
import torch

from graph.export import GraphExport
from tests.training.tensors import unscaled_data
from training.inputs import edge_dims
from training.model import HeteroRiskGNN, numeric_shapes
from training.numeric import PiecewiseLinear, quantile_edges


def test_encoding_is_bounded_monotone_and_flat_beyond_the_fitted_range() -> None:
    """Inside the fitted range each bin's part rises from 0 to 1 in turn; beyond the
    outermost edges the encoding no longer moves (a tree's flat extrapolation), so an
    account newer than any labelled one is not pushed further along a fitted line."""
    rng = np.random.default_rng(0)
    values = rng.lognormal(size=(500, 3)).astype(np.float32)
    encode = PiecewiseLinear(quantile_edges(values, 4))
    grid = torch.linspace(-5.0, 50.0, 400)[:, None].repeat(1, 3)
    out = encode(grid)
    assert out.shape == (400, 3 + 3 * 4)
    torch.testing.assert_close(out[:, :3], grid)  # raw columns kept, for the reasons
    parts = out[:, 3:].reshape(400, 3, 4)
    assert float(parts.min()) == 0.0 and float(parts.max()) == 1.0
    assert bool((parts.sum(-1).diff(dim=0) >= 0).all())  # monotone in the value
    lo, hi = float(values.min()), float(values.max())
    below, above = grid[:, 0] < lo, grid[:, 0] > hi
    assert below.any() and above.any()
    assert bool((parts[below] == 0).all()) and bool((parts[above] == 1).all())


def test_a_discrete_column_becomes_steps_without_nan() -> None:
    """Mostly zeros (refund rates, chargebacks): coinciding edges give steps, never NaN."""
    values = np.zeros((100, 1), dtype=np.float32)
    values[-3:] = [[1.0], [2.0], [3.0]]
    encode = PiecewiseLinear(quantile_edges(values, 8))
    out = encode(torch.tensor([[0.0], [0.5], [3.0], [9.0]]))
    assert torch.isfinite(out).all()
    assert out[0, 1:].sum() < out[1, 1:].sum() <= out[2, 1:].sum() == out[3, 1:].sum()


def test_the_model_records_its_encoding_shapes(graph: GraphExport) -> None:
    """What an artifact saves to rebuild the model before loading its state."""
    data, dims = unscaled_data(graph)
    n = 5
    edges = {"user": quantile_edges(data["user"].x[:, :n].numpy(), 6)}
    model = HeteroRiskGNN(dims, list(data.edge_types), edge_dims(data), 16, numeric_edges=edges)
    assert numeric_shapes(model) == {"user": [n, 6]}
    plain = HeteroRiskGNN(dims, list(data.edge_types), edge_dims(data), 16)
    assert numeric_shapes(plain) == {}
    with torch.no_grad():
        out = model(data.x_dict, data.edge_index_dict, data.edge_attr_dict)
    assert torch.isfinite(out["fraud"]).all()
