"""One user's numpy features and edge attributes equal the whole graph's, for every user."""

from __future__ import annotations

import numpy as np
import pandas as pd

from encoders.behaviour import reference_time, user_features
from encoders.edge_features import edge_attributes
from encoders.user_events import (
    UserEvents,
    edge_attribute_rows,
    events_from_export,
    user_feature_values,
)
from graph import schema
from graph.export import GraphExport


def test_user_features_equal_whole_graph(graph: GraphExport) -> None:
    whole = user_features(graph)
    now = reference_time(graph)
    got = pd.DataFrame(
        [user_feature_values(events_from_export(graph, i), now) for i in range(len(whole))]
    )[list(whole.columns)]
    np.testing.assert_allclose(got.to_numpy(), whole.to_numpy(), rtol=1e-9, atol=1e-9)
    assert whole["n_reviews"].max() > 0 and whole["max_users_on_device"].max() > 1


def test_edge_attributes_equal_whole_graph(graph: GraphExport) -> None:
    whole = edge_attributes(graph)
    now = reference_time(graph)
    for edge_type in (schema.ORDERED_EDGE, schema.REVIEWED_EDGE, schema.USES_EDGE):
        src = graph.edges[edge_type]["src"].to_numpy(np.int64)
        for user in np.unique(src)[:200]:
            rows = edge_attribute_rows(events_from_export(graph, int(user)), now)[edge_type[1]]
            np.testing.assert_allclose(rows, whole[edge_type][src == user], rtol=0, atol=1e-7)


def test_record_with_missing_values() -> None:
    """None amounts, ratings and timestamps behave as in the frame code (0, 3 or 'now')."""
    record = {
        "created_at": None, "props": {"feat_x": None},
        "orders": [{"product_id": "P1", "amount": None, "ts": None, "status": "paid",
                    "device_id": ""}],
        "reviews": [{"product_id": "P1", "rating": None, "ts": 5, "reviews": 3,
                     "rating_sum": 9}],
        "devices": [{"device_id": "D1", "logins": None, "first_seen": None, "last_seen": None,
                     "users": 4}],
    }  # fmt: skip
    ev = UserEvents.from_record(record, ["feat_x"])
    values = user_feature_values(ev, 10 * 86_400_000)
    assert values["total_spend"] == 0.0 and values["n_orders"] == 1.0
    assert values["max_users_on_device"] == 4.0 and np.isnan(values["feat_x"])
    attrs = edge_attribute_rows(ev, 10 * 86_400_000)
    assert attrs["ordered"][0, -2] == 1.0  # no timestamp: "now"
    assert attrs["reviewed"][0, 0] == 0.0  # no rating: 3, centred to 0


def test_thin_file_record() -> None:
    """No orders, reviews or devices: zeros (and -1 days to a first order), no error."""
    record = {"created_at": 0, "props": {}, "orders": [], "reviews": [], "devices": []}
    ev = UserEvents.from_record(record, [])
    assert ev.thin_file
    values = user_feature_values(ev, 86_400_000)
    assert values["n_orders"] == 0.0 and values["days_to_first_order"] == -1.0
    assert values["account_age_days"] == 1.0
    attrs = edge_attribute_rows(ev, 86_400_000)
    assert attrs["ordered"].shape == (0, 7) and attrs["uses"].shape == (0, 4)
