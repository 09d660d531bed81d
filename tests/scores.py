"""Score frames as `riskgraph score` writes them, random but seeded: for the tests of score
runs, history and unfinished-run flags, which need scores and not a model."""

from __future__ import annotations

import numpy as np
import pandas as pd


def random_scores(n_users: int, seed: int) -> pd.DataFrame:
    """One row per user ``U0 … U{n-1}``: probabilities, a 300–850 credit score, its band."""
    rng = np.random.default_rng(seed)
    credit = rng.integers(300, 850, n_users)
    return pd.DataFrame(
        {
            "user_id": [f"U{i}" for i in range(n_users)],
            "risk_score": rng.random(n_users),
            "default_probability": rng.random(n_users),
            "credit_score": credit,
            "risk_band": np.where(credit > 600, "low", "high"),
            "reasons": [["r"]] * n_users,
        }
    )
