"""``riskgraph ring RING_ID``: one ring as an investigator opens it, in the terminal.

Members with score, band and top reason; the devices and merchants at its centre; a
day-by-day activity timeline; the evidence links that bind it. Every query is read-only and
parameterised by the ring id.
"""

from __future__ import annotations

from typing import Any, LiteralString

from rich.console import Console
from rich.table import Table

from graph import schema
from graph.neo4j.store import GraphStore

RING: LiteralString = f"MATCH (r:{schema.RING} {{ring_id: $ring_id}}) RETURN properties(r) AS ring"
MEMBERS: LiteralString = f"""
MATCH (u:{schema.USER})-[:{schema.MEMBER_OF}]->(:{schema.RING} {{ring_id: $ring_id}})
RETURN u.user_id AS user, u.risk_score AS risk, u.risk_band AS band,
       coalesce(u.reasons[0], '') AS top_reason, toString(date(u.created_at)) AS created
ORDER BY risk DESC, user
"""
CENTRES: LiteralString = f"""
MATCH (:{schema.RING} {{ring_id: $ring_id}})-[c:{schema.CENTRES_ON}]->(n)
RETURN labels(n)[0] AS kind, coalesce(n.device_id, n.merchant_id) AS id, c.members AS members
ORDER BY kind, members DESC, id
"""
TIMELINE: LiteralString = f"""
MATCH (u:{schema.USER})-[:{schema.MEMBER_OF}]->(:{schema.RING} {{ring_id: $ring_id}})
MATCH (u)-[o:{schema.ORDERED}]->(:{schema.PRODUCT})
RETURN toString(date(o.ts)) AS day, count(*) AS orders, count(DISTINCT u) AS members,
       round(sum(o.amount), 2) AS amount,
       sum(CASE o.status WHEN 'chargeback' THEN 1 ELSE 0 END) AS chargebacks
ORDER BY day
"""
EVIDENCE: LiteralString = f"""
MATCH (a:{schema.USER})-[:{schema.MEMBER_OF}]->(r:{schema.RING} {{ring_id: $ring_id}})<-[:{schema.MEMBER_OF}]-(b:{schema.USER})
MATCH (a)-[l:{schema.LINKED}]->(b)
RETURN a.user_id AS a, b.user_id AS b, l.weight AS weight, l.evidence AS evidence
ORDER BY weight DESC, a, b LIMIT $limit
"""


def ring_report(store: GraphStore, ring_id: str, limit: int = 25) -> dict[str, Any] | None:
    """Everything the view shows, as plain rows (None when no such ring)."""
    found = store.read(RING, ring_id=ring_id)
    if not found:
        return None
    return {
        "ring": found[0]["ring"],
        "members": store.read(MEMBERS, ring_id=ring_id),
        "centres": store.read(CENTRES, ring_id=ring_id),
        "timeline": store.read(TIMELINE, ring_id=ring_id),
        "evidence": store.read(EVIDENCE, ring_id=ring_id, limit=limit),
    }


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for key in rows[0] if rows else ["(none)"]:
        table.add_column(key)
    for row in rows:
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()))
    return table


def print_ring(report: dict[str, Any], console: Console) -> None:
    r = report["ring"]
    evidence = ", ".join(f"{k[9:]} {r[k]}" for k in sorted(r) if k.startswith("evidence_"))
    console.print(
        f"[bold]{r['ring_id']}[/] ({r.get('status')}, {r.get('method')}): {r.get('size')} "
        f"members, density {r.get('density', 0):.2f}, risk mean {r.get('risk_mean', 0):.2f} "
        f"max {r.get('risk_max', 0):.2f}\nfirst seen {r.get('first_seen')}, last seen "
        f"{r.get('last_seen')}; last 30 days: orders {r.get('exposure_amount', 0):,.2f}, "
        f"charged back {r.get('chargeback_amount', 0):,.2f}\nevidence links: {evidence}"
    )
    console.print(_table("members", report["members"]))
    console.print(_table("at its centre", report["centres"]))
    console.print(_table("activity by day", report["timeline"]))
    console.print(_table("strongest evidence links", report["evidence"]))
