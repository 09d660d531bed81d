"""One user's neighbourhood, read in one parameterised round trip, shaped as a small GraphExport.

Online scoring (``training.online``) needs exactly what the user's own features and its
last message-passing layer read: the user's orders, reviews and device links, and for each
device and reviewed product only two aggregates (how many accounts use the device; how many
reviews the product has and their rating sum). A device's count comes from the server's
relationship counts, so a kiosk device with 10,000 users costs one number, not 10,000 rows; a
product's are its stored ``review_count``/``rating_sum`` (kept exact by every review writer,
see ``graph.neo4j.load.RECOUNT_TOUCHED``), counted by traversal only where a graph imported
before they existed lacks them (the ``UNION ALL`` branch: a product that has them costs no
traversal);
the user's own edges are capped at ``fanout`` per relation (a documented bound, far above any
real account's history).

The local graph is a :class:`GraphExport` whose user 0 is the scored user and whose user 1
is a placeholder standing for "every other account": it carries the other users' device
links and reviews, as many as the aggregates say, so ``encoders.behaviour.user_features``
computes user 0's features exactly as on the whole graph (the placeholder's own row is
discarded).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, LiteralString, cast

import numpy as np
import pandas as pd

from graph.export import GraphExport
from graph.neo4j.store import GraphStore

NEIGHBOURHOOD: LiteralString = """
MATCH (u:User {user_id: $user_id})
CALL { WITH u
  OPTIONAL MATCH (u)-[o:ORDERED]->(p:Product)
  WITH o, p ORDER BY o.ts LIMIT $fanout
  RETURN collect(CASE WHEN o IS NULL THEN null ELSE {order_id: o.order_id,
    product_id: p.product_id, amount: o.amount, ts: o.ts.epochMillis, status: o.status,
    device_id: coalesce(o.device_id, '')} END) AS orders }
CALL { WITH u
  OPTIONAL MATCH (u)-[r:REVIEWED]->(p:Product)
  WITH r, p ORDER BY r.ts LIMIT $fanout
  CALL { WITH p
    WITH p WHERE p.review_count IS NOT NULL AND p.rating_sum IS NOT NULL
    RETURN p.review_count AS n, p.rating_sum AS s
    UNION ALL
    WITH p
    WITH p WHERE p.review_count IS NULL OR p.rating_sum IS NULL
    OPTIONAL MATCH (p)<-[x:REVIEWED]-()
    WITH p, count(x) AS n, sum(x.rating) AS s
    RETURN n, s }
  RETURN collect(CASE WHEN r IS NULL THEN null ELSE {review_id: r.review_id,
    product_id: p.product_id, rating: r.rating, ts: r.ts.epochMillis,
    reviews: n, rating_sum: s} END) AS reviews }
CALL { WITH u
  OPTIONAL MATCH (u)-[s:USES]->(d:Device)
  WITH s, d ORDER BY d.device_id LIMIT $fanout
  RETURN collect(CASE WHEN s IS NULL THEN null ELSE {device_id: d.device_id,
    logins: s.logins, first_seen: s.first_seen.epochMillis, last_seen: s.last_seen.epochMillis,
    users: COUNT { (d)<-[:USES]-() }} END) AS devices }
OPTIONAL MATCH (l:Label {user_id: $user_id})
RETURN u.created_at.epochMillis AS created_at, properties(u) AS props, orders, reviews, devices,
       l.fraud AS fraud, l.default AS default,
       COLLECT { MATCH (u)-[:MEMBER_OF]->(r:Ring) RETURN r.ring_id } AS rings
"""

# Several users' neighbourhoods in one query, one record each (``user_id`` added): the same
# text over ``UNWIND $user_ids``. The service appends it to an event's last write query, so the
# rescored users are read as just written without a round trip of their own.
NEIGHBOURHOODS = cast(
    LiteralString,
    "UNWIND $user_ids AS uid\n"
    + NEIGHBOURHOOD.replace("$user_id", "uid").replace(
        "RETURN u.created_at", "RETURN uid AS user_id, u.created_at"
    ),
)


@dataclass
class Neighbourhood:
    """One user's neighbourhood record and what the scorer needs beside it; the local graph
    (user 0 is the user) is built only when asked for (the reference online path)."""

    user_id: str
    record: dict[str, Any]
    feature_keys: list[str]
    fraud_label: float  # 1.0, 0.0 or NaN (unknown)
    stored: dict[str, Any]  # the user's stored properties (scores of the last run, if any)
    rings: list[str]

    @cached_property
    def graph(self) -> GraphExport:
        return local_graph(self.user_id, self.record, self.feature_keys)

    @property
    def thin_file(self) -> bool:
        """No order, review or device link: nothing but the account itself is known."""
        return not (self.record["orders"] or self.record["reviews"] or self.record["devices"])


def neighbourhood_of(user_id: str, row: dict[str, Any], feature_keys: list[str]) -> Neighbourhood:
    """One NEIGHBOURHOOD record as a :class:`Neighbourhood`."""
    fraud = row["fraud"]
    return Neighbourhood(
        user_id, row, list(feature_keys), np.nan if fraud is None else float(fraud),
        dict(row["props"]), list(row["rings"]),
    )  # fmt: skip


def read_neighbourhood(
    store: GraphStore, user_id: str, feature_keys: list[str], fanout: int
) -> Neighbourhood | None:
    """The user's neighbourhood, or None when no such user is stored."""
    rows = store.read(NEIGHBOURHOOD, user_id=user_id, fanout=fanout)
    return neighbourhood_of(user_id, rows[0], feature_keys) if rows else None


def _frame(items: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(items, columns=columns) if items else pd.DataFrame(columns=columns)


def local_graph(user_id: str, row: dict[str, Any], feature_keys: list[str]) -> GraphExport:
    """Shape one NEIGHBOURHOOD record into a GraphExport (see the module docstring)."""
    from torch_geometric.data import HeteroData

    orders = _frame(row["orders"], ["order_id", "product_id", "amount", "ts", "status",
                                    "device_id"])  # fmt: skip
    reviews = _frame(row["reviews"], ["review_id", "product_id", "rating", "ts", "reviews",
                                      "rating_sum"])  # fmt: skip
    devices = _frame(row["devices"], ["device_id", "logins", "first_seen", "last_seen", "users"])
    products = pd.Index(pd.unique(np.concatenate([orders["product_id"].to_numpy(object),
                                                   reviews["product_id"].to_numpy(object)])))  # fmt: skip
    device_ids = pd.Index(devices["device_id"].to_numpy(object))

    order_edges = orders.assign(src=0, dst=products.get_indexer(orders["product_id"]))
    uses = devices.assign(src=0, dst=np.arange(len(devices)))
    others = np.maximum(devices["users"].to_numpy(np.int64) - 1, 0)
    pad_uses = pd.DataFrame({"src": 1, "dst": np.repeat(np.arange(len(devices)), others),
                             "logins": 0, "first_seen": 0, "last_seen": 0})  # fmt: skip
    own_reviews = reviews.assign(src=0, dst=products.get_indexer(reviews["product_id"]))
    pad_reviews = _other_reviews(own_reviews)
    props = row["props"]
    users = pd.DataFrame({"id": [user_id, "\x00others"], "created_at": [row["created_at"] or 0, 0]})
    for key in feature_keys:
        value = props.get(key)
        users[key] = [np.nan if value is None else float(value), np.nan]
    cols = ["src", "dst"]
    edges = {
        ("user", "ordered", "product"): order_edges[
            [*cols, "order_id", "amount", "ts", "status", "device_id"]
        ],
        ("user", "reviewed", "product"): pd.concat(
            [own_reviews[[*cols, "review_id", "rating", "ts"]], pad_reviews], ignore_index=True
        ),
        ("user", "uses", "device"): pd.concat(
            [uses[[*cols, "logins", "first_seen", "last_seen"]], pad_uses], ignore_index=True
        ),
        ("product", "sold_by", "merchant"): pd.DataFrame({"src": [], "dst": []}, dtype=np.int64),
    }
    for frame in edges.values():
        for col in ("src", "dst"):
            frame[col] = frame[col].astype(np.int64)
    ids = {"user": users["id"].to_numpy(object), "product": products.to_numpy(object),
           "device": device_ids.to_numpy(object), "merchant": np.zeros(0, dtype=object)}  # fmt: skip
    nodes = {
        "user": users,
        "product": pd.DataFrame({"id": ids["product"], "price": 0.0, "category": ""}),
        "device": pd.DataFrame({"id": ids["device"], "kind": "other"}),
        "merchant": pd.DataFrame({"id": ids["merchant"]}),
    }
    labels = pd.DataFrame({"fraud": [np.nan, np.nan], "default": [np.nan, np.nan],
                           "observed_at": [np.nan, np.nan]})  # fmt: skip
    return GraphExport(HeteroData(), ids, nodes, edges, labels, list(feature_keys))


def _other_reviews(own: pd.DataFrame) -> pd.DataFrame:
    """Placeholder reviews by user 1 carrying the rest of each product's review count and
    rating sum, so the product's mean rating is the whole graph's."""
    if own.empty:
        return pd.DataFrame({"src": [], "dst": [], "rating": []})
    per = own.groupby("dst").agg(n=("rating", "size"), s=("rating", "sum"),
                                 total=("reviews", "first"), total_sum=("rating_sum", "first"))  # fmt: skip
    rest = (per["total"] - per["n"]).clip(lower=0).to_numpy(np.int64)
    mean = np.divide((per["total_sum"] - per["s"]).to_numpy(np.float64), rest,
                     out=np.zeros(len(rest)), where=rest > 0)  # fmt: skip
    return pd.DataFrame({"src": 1, "dst": np.repeat(per.index.to_numpy(np.int64), rest),
                         "rating": np.repeat(mean, rest)})  # fmt: skip
