"""Settings: read from RISKGRAPH_* variables, defaults owned by the library, overrides validated."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from encoders.text.model_path import DEFAULT_MODEL
from graph.limits import DEFAULT_BATCH_SIZE
from graph.neo4j.server import LocalNeo4jConfig
from graph.rings.config import RingConfig
from serving.cli import app
from serving.settings import Settings, with_overrides
from training.config import TrainConfig
from training.scorecard import ScoreScale


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKGRAPH_SPLIT", "time")
    monkeypatch.setenv("RISKGRAPH_NEO4J_PORT", "7999")
    monkeypatch.setenv("RISKGRAPH_FANOUTS", "[4, 2]")
    monkeypatch.setenv("RISKGRAPH_NEO4J_PASSWORD", "s3cret")
    s = Settings()
    assert (s.split, s.neo4j_port, s.fanouts) == ("time", 7999, [4, 2])
    assert s.neo4j_password is not None and s.neo4j_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)


def test_a_bad_environment_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKGRAPH_FOLDS", "1")
    with pytest.raises(ValueError, match="folds"):
        Settings()


def test_defaults_are_the_owners_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPLIT", "NEO4J_PORT", "SEED", "FOLDS", "EPOCHS", "RING_MIN_SIZE"):
        monkeypatch.delenv(f"RISKGRAPH_{name}", raising=False)
    s, train, rings, scale = Settings(), TrainConfig(), RingConfig(), ScoreScale()
    assert (s.seed, s.folds, s.epochs, s.hidden_dim, s.fanouts) == (
        train.seed,
        train.folds,
        train.epochs,
        train.hidden,
        list(train.fanouts),
    )
    assert (s.ring_min_size, s.ring_top_links, s.ring_method, s.ring_evidence) == (
        rings.min_size,
        rings.top_links,
        rings.method,
        list(rings.kinds),
    )
    assert (s.base_score, s.base_odds, s.pdo) == (scale.base_score, scale.base_odds, scale.pdo)
    assert s.neo4j_version == LocalNeo4jConfig.version
    assert (s.review_model, s.write_batch_size) == (DEFAULT_MODEL, DEFAULT_BATCH_SIZE)


def test_overrides_are_validated_and_keep_the_rest() -> None:
    base = Settings(seed=7)
    assert with_overrides(base, split="time").split == "time"
    assert with_overrides(base, split="time").seed == 7
    with pytest.raises(ValueError, match=r"--split 'bogus'"):
        with_overrides(base, split="bogus")
    with pytest.raises(ValueError, match="--folds"):
        with_overrides(base, folds=0)


def test_a_bad_option_fails_before_any_work(tmp_path: Path) -> None:
    """`train --split bogus` is refused at once (exit 2, naming the option), before the
    command connects to Neo4j or imports torch: the port here has no server."""
    env = {"RISKGRAPH_STATE_DIR": str(tmp_path), "RISKGRAPH_NEO4J_PORT": "1"}
    out = CliRunner().invoke(app, ["train", "--split", "bogus"], env=env)
    assert out.exit_code == 2
    assert "--split 'bogus'" in out.output and "crossfit|time|stratified" in out.output


def test_ring_settings_reach_the_ring_config_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``RISKGRAPH_RING_*`` variable lands in the matching RingConfig field."""
    from serving.pipeline import ring_config

    monkeypatch.setenv("RISKGRAPH_RING_COPY_REPEAT", "2.5")
    monkeypatch.setenv("RISKGRAPH_RING_MIN_RISK", "0.4")
    monkeypatch.setenv("RISKGRAPH_RING_EVIDENCE", '["device"]')
    cfg = ring_config(Settings())
    assert (cfg.copy_repeat, cfg.ring_min_risk, cfg.kinds) == (2.5, 0.4, ("device",))
    assert ring_config(Settings()).resolution == RingConfig().resolution
