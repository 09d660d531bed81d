"""Merchant risk: the expected share of fraud among a merchant's reviewers and buyers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.export import GraphExport, assemble
from training.predict import merchant_risk


def _market() -> GraphExport:
    """m1 sells p1, reviewed by u1 and bought by u2; m2 sells p2, bought by u3 and u4;
    m3 sells p3, which nobody touched."""
    nodes = {
        "user": pd.DataFrame(
            {"id": ["u1", "u2", "u3", "u4"], "created_at": [0] * 4, "country": None}
        ),
        "merchant": pd.DataFrame(
            {"id": ["m1", "m2", "m3"], "created_at": [0] * 3, "category": ["x"] * 3}
        ),
        "product": pd.DataFrame(
            {"id": ["p1", "p2", "p3"], "category": ["x"] * 3, "price": [1.0] * 3}
        ),
        "device": pd.DataFrame({"id": ["d1"], "kind": ["ios"], "first_seen": [0]}),
    }
    edges = {
        "USES": pd.DataFrame({"src": ["u1"], "dst": ["d1"]}),
        "ORDERED": pd.DataFrame({"src": ["u2", "u3", "u4"], "dst": ["p1", "p2", "p2"]}),
        "REVIEWED": pd.DataFrame({"src": ["u1"], "dst": ["p1"]}),
        "SOLD_BY": pd.DataFrame({"src": ["p1", "p2", "p3"], "dst": ["m1", "m2", "m3"]}),
    }
    return assemble(nodes, edges, pd.DataFrame({"id": [], "fraud": [], "default": []}), [])


def test_a_review_weighs_twice_an_order_and_an_untouched_merchant_gets_the_mean() -> None:
    g = _market()
    p_fraud = np.array([1.0, 0.0, 0.5, 0.5])  # u1 (the reviewer) is a fraudster
    with np.errstate(invalid="ignore"):  # m3 has no evidence and, here, no prior: 0/0
        risk = merchant_risk(g, p_fraud, prior_weight=0.0)
    # m1: one risky review (weight 2) and one clean order (weight 1) -> 2/3
    np.testing.assert_allclose(risk[:2], [2 / 3, 0.5])
    shrunk = merchant_risk(g, p_fraud, prior_weight=3.0)
    mean = p_fraud.mean()
    np.testing.assert_allclose(shrunk[2], mean)  # m3: no evidence, the marketplace mean
    assert mean < shrunk[0] < risk[0]  # pulled towards the mean, still above it


def test_merchant_risk_on_a_generated_marketplace_is_a_probability(graph: GraphExport) -> None:
    rng = np.random.default_rng(0)
    p_fraud = rng.random(len(graph.ids["user"]))
    risk = merchant_risk(graph, p_fraud)
    assert risk.shape == (len(graph.ids["merchant"]),)
    assert ((risk >= 0) & (risk <= 1)).all()
    np.testing.assert_allclose(merchant_risk(graph, np.full(len(p_fraud), 0.2)), 0.2)
    shrunk = merchant_risk(graph, p_fraud, prior_weight=1e9)
    np.testing.assert_allclose(shrunk, p_fraud.mean(), rtol=1e-6)
    with np.errstate(invalid="ignore"):
        loose = merchant_risk(graph, p_fraud, prior_weight=0.0)
    assert np.nanstd(loose) > risk.std() > shrunk.std()
