"""The one place where the graph's labels, relationship types and property names are spelled.

Every Cypher string in the project is built from these names (never from user input), so a
typo in a query is a NameError at import rather than an empty result at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    # PyG's spelling of an edge type; imported for type checking only so that importing the
    # schema (every CLI command does) never imports torch.
    from torch_geometric.typing import EdgeType
else:
    EdgeType = tuple[str, str, str]  # the same alias as torch_geometric.typing.EdgeType

# Node labels and the property that holds each node's bundle id.
USER: Final = "User"
MERCHANT: Final = "Merchant"
PRODUCT: Final = "Product"
DEVICE: Final = "Device"
RING: Final = "Ring"
# Ground truth kept apart from the feature graph: nothing connects these to the entities,
# so no feature query can reach them by traversal.
LABEL: Final = "Label"
TRUTH_RING: Final = "TruthRingMember"
# One node per scoring run: (:ScoreRun {run_id, version, at, status, metrics, counts}).
SCORE_RUN: Final = "ScoreRun"

ID_KEY: Final[dict[str, str]] = {
    USER: "user_id",
    MERCHANT: "merchant_id",
    PRODUCT: "product_id",
    DEVICE: "device_id",
    RING: "ring_id",
    LABEL: "user_id",
}

# Bundle columns with this prefix on `users` become extra numeric behaviour features.
FEATURE_PREFIX: Final = "feat_"

# Relationship types.
ORDERED: Final = "ORDERED"
REVIEWED: Final = "REVIEWED"
SOLD_BY: Final = "SOLD_BY"
USES: Final = "USES"
MEMBER_OF: Final = "MEMBER_OF"
LINKED: Final = "LINKED"  # (:User)-[:LINKED {weight, evidence}]->(:User), evidence linkage
CENTRES_ON: Final = "CENTRES_ON"  # (:Ring)-[:CENTRES_ON {members}]->(:Device|:Merchant)

# Every label and relationship type a Cypher string may name (tests/graph/test_vocabulary.py
# fails on any other).
NODE_LABELS: Final = (USER, MERCHANT, PRODUCT, DEVICE, RING, LABEL, TRUTH_RING, SCORE_RUN)
RELATIONSHIP_TYPES: Final = (ORDERED, REVIEWED, SOLD_BY, USES, MEMBER_OF, LINKED, CENTRES_ON)

# HeteroData node type names (lower-case, as PyG examples use).
NODE_TYPES: Final[dict[str, str]] = {
    USER: "user",
    MERCHANT: "merchant",
    PRODUCT: "product",
    DEVICE: "device",
}


@dataclass(frozen=True)
class Relation:
    """One relationship type of the marketplace graph and its HeteroData edge type."""

    src: str
    rel: str
    dst: str

    @property
    def edge_type(self) -> EdgeType:
        return (NODE_TYPES[self.src], self.rel.lower(), NODE_TYPES[self.dst])

    @property
    def rev_edge_type(self) -> EdgeType:
        return (NODE_TYPES[self.dst], f"rev_{self.rel.lower()}", NODE_TYPES[self.src])


RELATIONS: Final[tuple[Relation, ...]] = (
    Relation(USER, ORDERED, PRODUCT),
    Relation(USER, REVIEWED, PRODUCT),
    Relation(PRODUCT, SOLD_BY, MERCHANT),
    Relation(USER, USES, DEVICE),
)

# HeteroData edge types of the relations, as the feature and ring code index them.
ORDERED_EDGE: Final[EdgeType] = RELATIONS[0].edge_type  # ("user", "ordered", "product")
REVIEWED_EDGE: Final[EdgeType] = RELATIONS[1].edge_type  # ("user", "reviewed", "product")
SOLD_BY_EDGE: Final[EdgeType] = RELATIONS[2].edge_type  # ("product", "sold_by", "merchant")
USES_EDGE: Final[EdgeType] = RELATIONS[3].edge_type  # ("user", "uses", "device")

# Order statuses (bundle `orders.status`): `cancelled` is an order never paid for.
PAID: Final = "paid"
REFUNDED: Final = "refunded"
CHARGEBACK: Final = "chargeback"
CANCELLED: Final = "cancelled"
ORDER_STATUSES: Final = (PAID, REFUNDED, CHARGEBACK, CANCELLED)
# Device kinds (bundle `devices.kind`).
DEVICE_KINDS: Final = ("ios", "android", "web", "other")

# Each product's review aggregates, kept exact (= a count and rating sum over its REVIEWED
# edges) by every path that writes reviews (graph.neo4j.load, graph.neo4j.bulk, the service's
# events), so the online neighbourhood read needs no traversal of a popular product's reviews.
# Absent on a graph imported before they existed: readers then count by traversal.
REVIEW_COUNT: Final = "review_count"
RATING_SUM: Final = "rating_sum"

# Properties written by scoring and read by analysts.
SCORE_PROPERTIES: Final = (
    "risk_score",
    "default_probability",
    "credit_score",
    "risk_band",
    "score_version",
    "scored_at",
    "reasons",
    "score_run",
)
# What a rescore keeps of the user's previous run (``graph.neo4j.writeback``): the score
# property on the left is copied into the ``previous_*`` one on the right.
PREVIOUS_PROPERTIES: Final[dict[str, str]] = {
    "credit_score": "previous_score",
    "risk_band": "previous_band",
    "risk_score": "previous_risk_score",
    "score_version": "previous_version",
    "score_run": "previous_run",
    "scored_at": "previous_scored_at",
}
# ScoreRun.status: a run is "started" until every user carries its scores.
RUN_STARTED: Final = "started"
RUN_COMPLETE: Final = "complete"


def constraint_statements() -> list[str]:
    """Idempotent uniqueness constraints: one per id property, plus the ground-truth tables.

    Labels and property names come from this module only, never from input.
    """
    stmts = [
        f"CREATE CONSTRAINT {label.lower()}_id IF NOT EXISTS "
        f"FOR (n:{label}) REQUIRE n.{key} IS UNIQUE"
        for label, key in ID_KEY.items()
    ]
    stmts.append(
        f"CREATE CONSTRAINT truth_ring_member IF NOT EXISTS "
        f"FOR (n:{TRUTH_RING}) REQUIRE (n.ring_id, n.user_id) IS UNIQUE"
    )
    stmts.append(
        f"CREATE CONSTRAINT score_run_id IF NOT EXISTS "
        f"FOR (n:{SCORE_RUN}) REQUIRE n.run_id IS UNIQUE"
    )
    stmts.append(
        f"CREATE INDEX ordered_order_id IF NOT EXISTS FOR ()-[r:{ORDERED}]-() ON (r.order_id)"
    )
    stmts.append(
        f"CREATE INDEX reviewed_review_id IF NOT EXISTS FOR ()-[r:{REVIEWED}]-() ON (r.review_id)"
    )
    # the API's score watcher asks for the users scored since its last look (serving/api/cache)
    stmts.append(f"CREATE INDEX user_scored_at IF NOT EXISTS FOR (n:{USER}) ON (n.scored_at)")
    return stmts
