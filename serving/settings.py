"""The one typed settings object. Every value can be set by a ``RISKGRAPH_*`` environment variable.

Only ``serving`` reads the environment; the lower layers receive plain arguments, which keeps
them testable and free of import-time work.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from encoders.text.model_path import DEFAULT_BATCH_SIZE as ENCODE_BATCH_SIZE
from encoders.text.model_path import DEFAULT_MODEL
from graph.limits import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_SIZE, DEFAULT_MAX_FIELD_BYTES
from graph.neo4j.server import CONNECT_TIMEOUT_S, LocalNeo4jConfig
from graph.rings.config import RingConfig
from training.config import TrainConfig
from training.scorecard import ScoreScale

# The owners' defaults are the settings' defaults (none is copied here); each module is light
# to import, so `riskgraph --help` loads no torch, pandas or driver.
_TRAIN = TrainConfig()
_NEO4J: dict[str, Any] = {f.name: f.default for f in fields(LocalNeo4jConfig)}  # home: required
_RINGS = RingConfig()
_SCALE = ScoreScale()


def _default_state_dir() -> Path:
    base = Path.home() / ".local" / "state"
    return base / "riskgraph"


class Settings(BaseSettings):
    """riskgraph's configuration.

    Neo4j: leave ``neo4j_uri`` unset to use the project's own local server (started by
    ``riskgraph neo4j start``, password generated into the state folder); set it to use an
    existing server, with ``neo4j_user`` and ``neo4j_password``.
    """

    model_config = SettingsConfigDict(env_prefix="RISKGRAPH_", extra="ignore")

    # -- Neo4j ---------------------------------------------------------------------------
    neo4j_uri: str | None = Field(None, description="Bolt URI of an existing server")
    neo4j_user: str = "neo4j"
    neo4j_password: SecretStr | None = None
    neo4j_database: str = "neo4j"
    neo4j_port: int = Field(_NEO4J["port"], description="Bolt port of the local server")
    neo4j_version: str = _NEO4J["version"]
    neo4j_heap: str = _NEO4J["heap"]
    neo4j_pagecache: str = _NEO4J["pagecache"]
    neo4j_gds_version: str | None = Field(
        _NEO4J["gds_version"],
        description="Graph Data Science plugin of the local server; empty: none",
    )
    write_batch_size: int = Field(
        DEFAULT_BATCH_SIZE, ge=1, description="rows per UNWIND write transaction"
    )
    neo4j_connect_timeout_s: float = Field(
        CONNECT_TIMEOUT_S,
        gt=0,
        description="seconds a Bolt connection (TCP connect and handshake) may take before the "
        "command fails: a stopped or frozen server is reported in seconds",
    )
    query_timeout_s: float = Field(
        60.0, gt=0, description="time limit of one `riskgraph cypher` query (server-side)"
    )
    debug: bool = Field(
        False,
        description="show tracebacks instead of one-line errors (read by the CLI's --debug "
        "option, so that it works even when another setting is invalid)",
    )
    write_batch_bytes: int = Field(
        DEFAULT_BATCH_BYTES,
        ge=1 << 16,
        description="approximate bytes (characters of text, 8 per number) per write or delete "
        "transaction (import, reset): rows "
        "with long texts go in smaller transactions so the server's heap is never exhausted",
    )
    max_field_bytes: int = Field(
        DEFAULT_MAX_FIELD_BYTES,
        ge=1,
        description="largest free-text value (review text, category) an import accepts, in "
        "UTF-8 bytes; a longer one is rejected as field_too_large",
    )

    # -- files ---------------------------------------------------------------------------
    state_dir: Path = Field(default_factory=_default_state_dir)
    artifact_dir: Path | None = Field(
        None, description="model artifacts; default state_dir/artifacts"
    )
    export_dir: Path = Path("exports")

    # -- encoders ------------------------------------------------------------------------
    review_model: str = Field(
        DEFAULT_MODEL,
        description="BERT-family checkpoint: a local folder or an installed package shipping model/",
    )
    encode_batch_size: int = ENCODE_BATCH_SIZE
    encode_int8: bool = Field(
        False,
        description="encode reviews with the int8 CPU encoder (~2.8x faster, cosine >= 0.99 "
        "to fp32); a model scores only with the encoder setting it was trained with",
    )
    embedding_cache: bool = True

    # -- training ------------------------------------------------------------------------
    seed: int = _TRAIN.seed
    split: str = Field(
        "crossfit",
        pattern="^(crossfit|time|stratified)$",
        description="crossfit (default): K grouped folds, every label teaches the production "
        "model and out-of-fold predictions give the metrics; or a single held-out split for "
        "evaluation only: time (train on earlier accounts, test on later) or stratified",
    )
    folds: int = Field(_TRAIN.folds, ge=2, description="cross-fitting folds (fold models)")
    public_device_users: int = Field(
        _TRAIN.public_device_users,
        ge=2,
        description="a device used by more accounts than this is public (kiosk, shop tablet) "
        "and does not tie its users into one fold",
    )
    numeric_bins: int = Field(
        _TRAIN.numeric_bins,
        ge=0,
        description="quantile bins of the users' piecewise-linear feature encoding "
        "(training/numeric.py); 0 (the default) turns it off",
    )
    hidden_dim: int = _TRAIN.hidden
    epochs: int = _TRAIN.epochs
    patience: int = _TRAIN.patience
    learning_rate: float = _TRAIN.lr
    batch_size: int = Field(
        _TRAIN.batch_size, ge=1, description="seed users per training mini-batch"
    )
    fanouts: list[int] = Field(
        list(_TRAIN.fanouts), description="sampled neighbours per relation and hop"
    )
    label_trick: bool = Field(
        _TRAIN.label_trick, description="neighbours' known fraud labels as GNN inputs"
    )
    ensemble: int = Field(
        3,  # the product's choice; the library's TrainConfig default is a single model
        ge=1,
        description="with --split time|stratified only: GNNs trained from consecutive seeds, "
        "logits averaged (cross-fitting averages its fold models instead)",
    )
    device: str | None = Field(None, description="torch device; default cuda when present")

    # -- credit score scaling (points to double the odds) --------------------------------
    base_score: float = _SCALE.base_score
    base_odds: float = _SCALE.base_odds
    pdo: float = _SCALE.pdo

    # -- rings ---------------------------------------------------------------------------
    ring_min_size: int = _RINGS.min_size
    ring_risk_threshold: float = _RINGS.risk_threshold
    ring_link_risk_floor: float = Field(
        _RINGS.link_risk_floor,
        description="accounts below this risk take no part in evidence linkage",
    )
    ring_member_floor: float | None = Field(
        _RINGS.member_floor,
        description="least risk of a ring member (joins through links to risky members)",
    )
    ring_min_risk: float = Field(
        _RINGS.ring_min_risk, description="least mean member risk of a ring"
    )
    ring_top_links: int = Field(
        _RINGS.top_links, ge=1, description="strongest evidence links kept per account"
    )
    ring_sync_window_s: int = Field(
        _RINGS.sync_window_s,
        ge=60,
        description="window in which activity at one merchant is synchronised",
    )
    ring_method: str = Field(
        _RINGS.method,
        pattern="^(communities|dense|both)$",
        description="rings from Leiden communities of the linkage, FRAUDAR dense blocks, or both",
    )
    ring_copy_repeat: float = Field(
        _RINGS.copy_repeat,
        ge=0,
        description="a copy group whose authors post on average this many of its copies each is "
        "a review-farm ring by its text alone; 0: off",
    )
    ring_evidence: list[str] = Field(
        list(_RINGS.kinds), description="evidence kinds used for linkage"
    )
    ring_link_chance: float = Field(
        _RINGS.link_chance,
        ge=0,
        description="a creation-burst link counts only when fewer than this many accounts are "
        "expected to tie to either end as strongly by chance; 0: off",
    )
    ring_core_chance: float = Field(
        _RINGS.core_chance,
        ge=0,
        description="a ring no shared device binds stands only when fewer than this many groups "
        "of accounts are expected to be as co-active by chance; 0: off",
    )
    ring_vouch_chance: float = Field(
        _RINGS.vouch_chance,
        ge=0,
        description="a low-risk account joins a ring's risky core by repeated synchronised "
        "activity when fewer than this many accounts would do as much by chance; 0: off",
    )
    ring_vouch_share: float = Field(
        _RINGS.vouch_share,
        gt=0,
        le=1,
        description="share of a core's members that make a window one of its acts, and least "
        "share of a vouched account's windows at those merchants that are acts",
    )
    ring_merge_cores: bool = Field(
        _RINGS.merge_cores, description="join risky cores that vouch for each other's members"
    )

    # -- exports and privacy (issue 15) ---------------------------------------------------
    pseudonym_key: SecretStr | None = Field(
        None,
        description="key of `riskgraph export --pseudonymise` (HMAC-SHA256 of user, device and "
        "merchant ids); at least 16 bytes; unset: pseudonymised exports are refused",
    )
    export_part_rows: int = Field(
        1_000_000, ge=1, description="rows per file of `riskgraph export` (larger tables split)"
    )

    # -- web service (`riskgraph serve`, serving/api/) -------------------------------------
    api_keys: SecretStr = Field(
        SecretStr(""), description="comma-separated API keys; the service refuses to start without"
    )
    api_revoked_keys: SecretStr = Field(
        SecretStr(""), description="comma-separated keys refused with 403 even if still listed"
    )
    api_max_batch: int = Field(100, ge=1, description="most user ids in one POST /v1/score")
    api_max_event_rows: int = Field(500, ge=1, description="most rows in one POST /v1/events")
    api_max_body_bytes: int = Field(1 << 20, ge=1024, description="largest request body")
    api_neo4j_timeout_s: float = Field(
        0.8, gt=0, description="connect, pool wait and query time limit of one API request"
    )
    api_fanout: int = Field(
        5000, ge=1, description="most edges per relation read for one user's online rescoring"
    )
    api_cache: bool = Field(True, description="answer stored scores from the in-process cache")
    api_cache_refresh_s: float = Field(
        2.0, gt=0, description="how often the service looks for new runs, rings, others' writes"
    )
    api_snapshot_refresh_s: float = Field(
        0.0, ge=0, description="rebuild the neighbour-state snapshot this often (0: on new runs)"
    )

    @property
    def neo4j_home(self) -> Path:
        return self.state_dir / "neo4j"

    @property
    def artifacts(self) -> Path:
        return self.artifact_dir or self.state_dir / "artifacts"

    @property
    def embedding_cache_dir(self) -> Path | None:
        return self.state_dir / "embedding-cache" if self.embedding_cache else None


def with_overrides(settings: Settings, **overrides: object) -> Settings:
    """``settings`` with some fields replaced (a command's options), validated exactly like
    values from the environment, so a bad option fails at once, before any work, naming the
    option (``model_copy(update=…)`` would skip validation)."""
    try:
        return Settings.model_validate({**settings.model_dump(), **overrides})
    except ValidationError as exc:
        problems = "; ".join(
            f"--{str(e['loc'][0]).replace('_', '-')} {e['input']!r}: {e['msg']}"
            for e in exc.errors()
        )
        raise ValueError(problems) from None
