"""Cost of the online neighbourhood read: stored product review aggregates vs traversal.

For the users whose reviewed products carry the most reviews, runs ``PROFILE`` of
``graph.neo4j.neighbourhood.NEIGHBOURHOOD`` (which reads each product's stored
``review_count``/``rating_sum``) and of the baseline, the same query counting every
reviewed product's reviews by traversal (the read before the aggregates were stored), and
times both: db hits and median milliseconds side by side, in one process, on one graph.

Usage (a graph imported or recounted with the aggregates, e.g. `riskgraph import`):
    python bench/neighbourhood_hits.py --users 5 --repeats 20
"""

from __future__ import annotations

import argparse
import time
from typing import Any, LiteralString, cast

import numpy as np

from graph import schema
from graph.neo4j.neighbourhood import NEIGHBOURHOOD
from graph.neo4j.store import GraphStore
from serving.connect import open_store
from serving.settings import Settings

_STORED_BRANCH = NEIGHBOURHOOD[
    NEIGHBOURHOOD.index("  CALL { WITH p\n") : NEIGHBOURHOOD.index("RETURN n, s }") + 13
]
TRAVERSAL = cast(
    LiteralString,
    NEIGHBOURHOOD.replace(
        _STORED_BRANCH,
        "  CALL { WITH p\n    OPTIONAL MATCH (p)<-[x:REVIEWED]-()\n"
        "    RETURN count(x) AS n, sum(x.rating) AS s }",
    ),
)
HEAVY: LiteralString = f"""
MATCH (u:{schema.USER})-[:{schema.REVIEWED}]->(p:{schema.PRODUCT})
WITH u, sum(coalesce(p.{schema.REVIEW_COUNT}, COUNT {{ (p)<-[:{schema.REVIEWED}]-() }})) AS weight
RETURN u.user_id AS id, weight ORDER BY weight DESC, id LIMIT $n
"""

# Typical reviewing users: ``$n`` of them evenly spaced in user id order.
SAMPLE: LiteralString = f"""
MATCH (u:{schema.USER}) WHERE EXISTS {{ (u)-[:{schema.REVIEWED}]->() }}
WITH u ORDER BY u.user_id
WITH collect(u) AS us
UNWIND range(0, $n - 1) AS i
WITH us[toInteger(i * size(us) / $n)] AS u
MATCH (u)-[:{schema.REVIEWED}]->(p:{schema.PRODUCT})
RETURN u.user_id AS id, sum(coalesce(p.{schema.REVIEW_COUNT}, 0)) AS weight
"""


def _hits(plan: Any) -> int:
    return int(plan.get("dbHits", 0)) + sum(_hits(c) for c in plan.get("children", []))


def measure(store: GraphStore, query: LiteralString, user: str, fanout: int, repeats: int) -> tuple[int, float, Any]:  # fmt: skip
    with store.driver.session(database=store.database) as session:
        profile = session.run(cast(LiteralString, "PROFILE " + query), user_id=user, fanout=fanout)
        record = profile.single()
        hits = _hits(profile.consume().profile)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            session.run(query, user_id=user, fanout=fanout).consume()
            times.append((time.perf_counter() - started) * 1e3)
    return hits, float(np.median(times)), None if record is None else record["reviews"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--sample", type=int, default=50, help="typical reviewing users")
    args = parser.parse_args()
    settings = Settings()
    with open_store(settings, start=False) as store:
        heavy = store.read(HEAVY, n=args.users)
        print(f"{'user':<12} {'reviews on its products':>24} {'db hits traversal':>18} "
              f"{'db hits stored':>15} {'ms traversal':>13} {'ms stored':>10}")  # fmt: skip
        for row in heavy:
            old = measure(store, TRAVERSAL, row["id"], settings.api_fanout, args.repeats)
            new = measure(store, NEIGHBOURHOOD, row["id"], settings.api_fanout, args.repeats)
            assert old[2] == new[2], "stored aggregates differ from the traversal's"
            print(f"{row['id']:<12} {row['weight']:>24} {old[0]:>18} {new[0]:>15} "
                  f"{old[1]:>13.2f} {new[1]:>10.2f}")  # fmt: skip
        rows = []
        for row in store.read(SAMPLE, n=args.sample):
            old = measure(store, TRAVERSAL, row["id"], settings.api_fanout, 3)
            new = measure(store, NEIGHBOURHOOD, row["id"], settings.api_fanout, 3)
            assert old[2] == new[2], "stored aggregates differ from the traversal's"
            rows.append((row["weight"], old[0], new[0], old[1], new[1]))
        if rows:
            med = np.median(np.array(rows, dtype=np.float64), axis=0)
            print(f"{'median of ' + str(len(rows)):<12} {med[0]:>24.0f} {med[1]:>18.0f} "
                  f"{med[2]:>15.0f} {med[3]:>13.2f} {med[4]:>10.2f}   (typical reviewing users)")  # fmt: skip


if __name__ == "__main__":
    main()
