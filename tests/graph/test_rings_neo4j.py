"""Rings against the real Neo4j: a planted marketplace, stable ids, reruns, the view, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from graph.bundle import read_bundle
from graph.neo4j.load import import_bundle
from graph.neo4j.reader import export_graph
from graph.neo4j.store import GraphStore
from serving.pipeline import rings_from_store
from serving.ring_view import print_ring, ring_report
from serving.settings import Settings

pytestmark = pytest.mark.neo4j
COORD = [f"C{i}" for i in range(1, 6)]  # coordinated: no shared device, same merchant, same days
FARM = [f"F{i}" for i in range(1, 5)]  # share one device
HOUSE = [f"H{i}" for i in range(1, 5)]  # a legit family on one device
CAFE = [f"K{i:02d}" for i in range(25)]  # a café PC; K00-K02 are risky lone fraudsters
FILLER = [f"L{i:02d}" for i in range(30)]


def _write_market(folder: Path, joiner: bool = False) -> Path:
    """The planted marketplace as a bundle; ``joiner`` adds C6, who joins the coordinated ring."""
    coord = COORD + (["C6"] if joiner else [])
    users = coord + FARM + HOUSE + CAFE + FILLER
    folder.mkdir(parents=True, exist_ok=True)
    day = pd.Timestamp("2026-03-01", tz="UTC")
    devices = [f"own-{u}" for u in users] + ["dFarm", "dHouse", "dCafe"]
    logins = [(u, f"own-{u}") for u in users] + [(u, "dFarm") for u in FARM]
    logins += [(u, "dHouse") for u in HOUSE] + [(u, "dCafe") for u in CAFE]
    orders = [(u, "PS", day + pd.Timedelta(days=d, hours=i))
              for d in (3, 10, 17, 24) for i, u in enumerate(coord)]  # fmt: skip
    orders += [(u, "PB", day + pd.Timedelta(days=d, minutes=i))
               for d in (5, 12) for i, u in enumerate(CAFE + FILLER + HOUSE + FARM)]  # fmt: skip
    frames = {
        "merchants": pd.DataFrame({"merchant_id": ["MS", "MB"], "created_at": "2025-01-01",
                                   "category": "toys"}),
        "products": pd.DataFrame({"product_id": ["PS", "PB"], "merchant_id": ["MS", "MB"],
                                  "category": "toys", "price": 20.0}),
        "users": pd.DataFrame({"user_id": users, "created_at": "2026-01-01", "country": "DE"}),
        "devices": pd.DataFrame({"device_id": devices, "kind": "web",
                                 "first_seen": "2026-01-01"}),
        "logins": pd.DataFrame(logins, columns=["user_id", "device_id"]).assign(
            ts="2026-03-02T00:00:00Z"),
        "orders": pd.DataFrame({
            "order_id": [f"O{i}" for i in range(len(orders))],
            "user_id": [u for u, _, _ in orders], "product_id": [p for _, p, _ in orders],
            "amount": 20.0, "ts": [t.isoformat() for _, _, t in orders],
            "status": "paid", "device_id": "",
        }),
        "reviews": pd.DataFrame(columns=["review_id", "user_id", "product_id", "rating", "text",
                                         "ts"]),
    }  # fmt: skip
    for name, frame in frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def _load(store: GraphStore, folder: Path) -> None:
    import_bundle(store, read_bundle(folder))
    risky = [*COORD, "C6", *FARM, *CAFE[:3]]
    store.write_batches(
        "UNWIND $rows AS r MATCH (u:User {user_id: r.id}) SET u.risk_score = r.risk",
        [{"id": u, "risk": 0.9 if u in risky else 0.05}
         for u in [*COORD, "C6", *FARM, *HOUSE, *CAFE, *FILLER]],
    )  # fmt: skip


def _run(store: GraphStore, settings: Settings) -> pd.DataFrame:
    return rings_from_store(store, settings, export_graph(store), None)[1]


def _rings(store: GraphStore) -> dict[str, tuple[str, str, list[str]]]:
    rows = store.read(
        "MATCH (r:Ring) OPTIONAL MATCH (u:User)-[:MEMBER_OF]->(r) "
        "WITH r, u ORDER BY u.user_id "
        "RETURN r.ring_id AS id, r.status AS status, toString(r.first_seen) AS first, "
        "collect(u.user_id) AS members"
    )
    return {r["id"]: (r["status"], r["first"], r["members"]) for r in rows}


def test_planted_rings_stable_ids_reruns_and_the_view(
    store: GraphStore, neo4j_settings: Settings, tmp_path: Path
) -> None:
    _load(store, _write_market(tmp_path / "m1"))
    _run(store, neo4j_settings)
    first = _rings(store)
    groups = sorted(m for _, _, m in first.values())
    assert groups == [sorted(COORD), sorted(FARM)]  # no household, café or filler ring
    assert all(status == "new" for status, _, _ in first.values())
    coord_id = next(k for k, (_, _, m) in first.items() if "C1" in m)
    linked = store.read("MATCH (:User {user_id: 'C1'})-[l:LINKED]-(:User) "
                        "RETURN l.evidence AS e, l.weight AS w")  # fmt: skip
    assert linked and all(row["e"].startswith("sync=") for row in linked)

    # a rerun on the same graph changes nothing, and duplicates nothing
    counts = store.counts()
    _run(store, neo4j_settings)
    assert _rings(store) == first
    assert store.counts() == counts

    # C6 joins the coordinated ring: same id and first_seen, status grown
    _load(store, _write_market(tmp_path / "m2", joiner=True))
    _run(store, neo4j_settings)
    after = _rings(store)
    assert after[coord_id][0] == "grown" and after[coord_id][1] == first[coord_id][1]
    assert after[coord_id][2] == sorted([*COORD, "C6"])
    members = store.read("MATCH (u:User)-[m:MEMBER_OF]->(:Ring) "
                         "RETURN u.user_id AS u, count(m) AS n ORDER BY n DESC LIMIT 1")  # fmt: skip
    assert members[0]["n"] == 1

    # the investigation view
    report = ring_report(store, coord_id)
    assert report is not None
    assert [m["user"] for m in report["members"]] == sorted([*COORD, "C6"])
    assert {c["id"] for c in report["centres"]} == {"MS"}
    assert len(report["timeline"]) == 4 and report["evidence"]
    console = Console(record=True, width=150)
    print_ring(report, console)
    text = console.export_text()
    assert coord_id in text and "activity by day" in text
    assert ring_report(store, "ring-nope") is None


KILLED_WRITER = """
import sys, numpy as np, pandas as pd
from graph.rings.detect import Rings
from graph.rings.linkage import Links
from graph.rings.store import write_rings
from graph.neo4j.store import GraphStore
users = sys.argv[3].split(",")
n = 20000  # rings of three, enough that the one transaction runs for seconds
group = np.repeat(np.arange(n), 3)
members = pd.DataFrame({"group": group, "user": 0,
                        "user_id": [users[(g + k) % len(users)] for g, k in
                                    zip(group, np.tile(np.arange(3), n))]})
rings = pd.DataFrame({"group": np.arange(n), "size": 3, "density": 1.0, "risk_mean": 0.9,
                      "risk_max": 0.9, "method": "communities"})
e = np.zeros(0, dtype=np.int64)
payload = Rings(rings, members, pd.DataFrame(columns=["group", "kind", "id", "members"]),
                Links(e, e, np.zeros(0), np.zeros(0), {}), 1)
with GraphStore(sys.argv[1], "neo4j", sys.argv[2]) as store:
    print("writing", flush=True)
    write_rings(store, payload)
print("done", flush=True)
"""


@pytest.mark.slow
def test_a_killed_rings_run_leaves_the_previous_rings_whole(
    store: GraphStore, neo4j_settings: Settings, tmp_path: Path
) -> None:
    from serving.connect import connection

    _load(store, _write_market(tmp_path / "m"))
    _run(store, neo4j_settings)
    before, counts = _rings(store), store.counts()
    conn = connection(neo4j_settings)
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    users = ",".join(COORD + FILLER)
    child = subprocess.Popen([sys.executable, str(script), conn.uri, conn.password, users],
                             stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "writing"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the ring transaction is on the server
            running = store.read("SHOW TRANSACTIONS YIELD currentQuery "
                                 "WHERE currentQuery CONTAINS 'Ring' RETURN count(*) AS n")  # fmt: skip
            if running[0]["n"]:
                break
            time.sleep(0.05)
        assert child.poll() is None, "the writer finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    deadline = time.monotonic() + 60
    while store.read("SHOW TRANSACTIONS YIELD currentQuery WHERE currentQuery CONTAINS 'Ring' "
                     "RETURN count(*) AS n")[0]["n"] and time.monotonic() < deadline:  # fmt: skip
        time.sleep(0.2)
    assert _rings(store) == before
    assert store.counts() == counts
