"""The vectorised kernels behind the behaviour features and edge attributes, each pinned against
the plain formula it replaced (a pandas groupby, a Python-string lookup, an object comparison),
on small hand-made columns with the awkward cases: missing values, unknown ids, empty strings,
Arrow-backed and object columns, hours too far apart for one combined sort key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from encoders.behaviour import MS_PER_HOUR, _device_index, _max_per_hour, status_masks
from encoders.edge_features import STATUSES, _days_before, _ordered
from graph import schema
from graph.export import GraphExport

# How the two exports hold string columns: Python objects, and Arrow strings with NaN for missing.
DTYPES = [object, pd.StringDtype("pyarrow", na_value=np.nan)]


def _reference_max_per_hour(u: np.ndarray, ts: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    if len(u):
        per_hour = pd.DataFrame({"u": u, "h": ts // MS_PER_HOUR}).groupby(["u", "h"]).size()
        top = per_hour.groupby(level=0).max()
        out[top.index.to_numpy(np.int64)] = top.to_numpy(np.float64)
    return out


def test_max_orders_per_hour_by_hand() -> None:
    hour = MS_PER_HOUR
    # user 0: three orders in hour 5, one in hour 6; user 2: one order; user 1: none
    u = np.array([0, 2, 0, 0, 0], dtype=np.int64)
    ts = np.array([5 * hour + 1, 9 * hour, 5 * hour + 2, 6 * hour, 6 * hour - 1], dtype=np.int64)
    np.testing.assert_array_equal(_max_per_hour(u, ts, 3), [3.0, 0.0, 1.0])
    np.testing.assert_array_equal(_max_per_hour(u[:0], ts[:0], 3), np.zeros(3))


@pytest.mark.parametrize("spread_ms", [30 * 86_400_000, 2**62])
def test_max_orders_per_hour_equals_the_groupby(spread_ms: int) -> None:
    """Typical spans take the one-key sort, absurd ones (a garbage timestamp) the pair sort."""
    rng = np.random.default_rng(7)
    u = rng.integers(0, 50, 2_000)
    ts = rng.integers(0, 3 * MS_PER_HOUR, 2_000) + rng.choice([0, spread_ms], 2_000)
    ts[:3] = [0, -5, -MS_PER_HOUR - 1]  # missing (filled 0) and negative times floor the same
    np.testing.assert_array_equal(_max_per_hour(u, ts, 60), _reference_max_per_hour(u, ts, 60))


@pytest.mark.parametrize("dtype", DTYPES)
def test_order_statuses_as_codes_equal_the_object_comparison(dtype: object) -> None:
    status = pd.Series(["paid", None, "refunded", "chargeback", "paid", "odd"], dtype=dtype)
    got = status_masks(status)
    values = status.to_numpy(dtype=object)
    for st in schema.ORDER_STATUSES:
        np.testing.assert_array_equal(got[st], values == st)
    assert not status_masks(pd.Series(["paid"]))[schema.CANCELLED].any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_order_devices_found_as_by_index_of(graph: GraphExport, dtype: object) -> None:
    known = graph.ids["device"]
    device_id = pd.Series(
        [known[0], None, "", "no-such-device", known[-1], np.nan, known[0]], dtype=dtype
    )
    expected = graph.index_of("device", device_id.fillna("").to_numpy(dtype=object))
    got = _device_index(graph, device_id)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    assert got[0] == 0 and got[4] == len(known) - 1 and (got[[1, 2, 3, 5]] == -1).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_ordered_edge_attributes_equal_the_plain_formula(dtype: object) -> None:
    now = 1_780_000_000_000
    frame = pd.DataFrame(
        {
            "amount": [10.0, None, 0.0, 1234.5, 3.0],
            "status": pd.Series(["paid", "chargeback", None, "refunded", "cancelled"], dtype=dtype),
            "ts": [now, now - 86_400_000, None, now - 40 * 86_400_000, now + 5],
            "device_id": pd.Series(["D1", None, "", "D2", np.nan], dtype=dtype),
        }
    )
    amount = pd.to_numeric(frame["amount"], errors="coerce").fillna(0).to_numpy(np.float64)
    status = frame["status"].astype(str).to_numpy()
    onehot = np.stack([status == s for s in STATUSES], axis=1).astype(np.float64)
    device = frame["device_id"].fillna("").astype(str).to_numpy() != ""
    expected = np.column_stack(
        [np.log1p(amount) / 5.0, onehot, _days_before(now, frame["ts"]), device]
    ).astype(np.float32)
    got = _ordered(frame, now)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got[:, -1], [1, 0, 0, 1, 0])
