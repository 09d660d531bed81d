"""Ring detection on graphs small enough to check by eye (no database)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from graph.export import GraphExport, assemble
from graph.rings import RingConfig, detect_rings, match_planted
from graph.rings.dense import peel
from graph.rings.stable import CLOSED, GROWN, NEW, UNCHANGED, PreviousRing, assign_ids

DAY_MS = 86_400_000


def _graph(users: list[str], uses: list[tuple[str, str]], orders: list[tuple[str, str, int]],
           reviews: list[tuple[str, str]] | None = None,
           created: dict[str, int] | None = None) -> GraphExport:  # fmt: skip
    """Users, devices, one product per merchant (``p_<m>``), orders (user, merchant, ms)."""
    merchants = sorted({m for _, m, _ in orders} | {m for _, m in reviews or []} | {"m0"})
    devices = sorted({d for _, d in uses})
    created = created or {}
    nodes = {
        "user": pd.DataFrame({"id": users, "created_at": [created.get(u, -1) for u in users],
                              "country": None}),
        "merchant": pd.DataFrame({"id": merchants, "created_at": 0, "category": "x"}),
        "product": pd.DataFrame({"id": [f"p_{m}" for m in merchants], "category": "x",
                                 "price": 10.0}),
        "device": pd.DataFrame({"id": devices, "kind": "web", "first_seen": 0}),
    }  # fmt: skip
    edges = {
        "USES": pd.DataFrame(uses, columns=["src", "dst"]).assign(logins=1, first_seen=0,
                                                                  last_seen=0),
        "ORDERED": pd.DataFrame({
            "src": [u for u, _, _ in orders], "dst": [f"p_{m}" for _, m, _ in orders],
            "ts": [t for _, _, t in orders], "amount": 10.0, "status": "paid",
            "order_id": [f"o{i}" for i in range(len(orders))], "device_id": None,
        }),
        "REVIEWED": pd.DataFrame({"src": [u for u, _ in reviews or []],
                                  "dst": [f"p_{m}" for _, m in reviews or []],
                                  "rating": 5, "ts": 0}),
        "SOLD_BY": pd.DataFrame({"src": [f"p_{m}" for m in merchants], "dst": merchants}),
    }  # fmt: skip
    return assemble(nodes, edges, pd.DataFrame({"id": [], "fraud": [], "default": []}), [])


def _groups(found: object) -> list[list[str]]:
    members = found.members  # type: ignore[attr-defined]
    return sorted(sorted(m) for _, m in members.groupby("group")["user_id"])


def test_two_farms_stay_apart_across_a_busy_merchant_and_a_cafe_device() -> None:
    """Two device farms (r1-r3 on dA, r4-r6 on dB) shop at one busy merchant on the same two
    days, and r1 and r4 also use a café PC with four legit users: still two rings, and no
    legit account in either."""
    ring = [f"r{i}" for i in range(1, 7)]
    legit = [f"l{i}" for i in range(1, 5)]
    crowd = [f"x{i:02d}" for i in range(40)]
    uses = [(u, "dA") for u in ring[:3]] + [(u, "dB") for u in ring[3:]]
    uses += [("r1", "dC"), ("r4", "dC")] + [(u, "dC") for u in legit]
    orders = [(u, "mBusy", d * DAY_MS) for d in (2, 9) for u in ring + crowd]
    g = _graph(ring + legit + crowd, uses, orders)
    risk = np.where(np.isin(g.ids["user"], ring), 0.9, 0.01)
    found = detect_rings(g, risk, None, RingConfig())
    assert _groups(found) == [ring[:3], ring[3:]]


def test_coordinated_ring_without_a_shared_device_is_found_and_households_are_not() -> None:
    """c1-c5 never share a device but order at the same small merchant on the same days, four
    times; a household of four legit users shares one device; a kiosk is used by 30 accounts,
    three of them risky lone fraudsters."""
    coord = [f"c{i}" for i in range(1, 6)]
    house = [f"h{i}" for i in range(1, 5)]
    kiosk_users = [f"k{i:02d}" for i in range(30)]
    lone = kiosk_users[:3]
    users = coord + house + kiosk_users
    uses = [(u, f"own-{u}") for u in users] + [(u, "dHouse") for u in house]
    uses += [(u, "dKiosk") for u in kiosk_users]
    orders = [(u, "mSmall", day * DAY_MS + 3_600_000 * i)
              for day in (3, 10, 17, 24) for i, u in enumerate(coord)]  # fmt: skip
    orders += [(u, "mBig", d * DAY_MS) for d in (3, 10) for u in kiosk_users]  # a busy merchant
    g = _graph(users, uses, orders)
    risk = pd.Series(0.05, index=users)
    risk[coord] = 0.8
    risk[lone] = 0.9
    risk[house] = 0.15
    found = detect_rings(g, risk.reindex(g.ids["user"]).to_numpy(), None, RingConfig())
    assert _groups(found) == [coord]
    assert found.rings.loc[0, "evidence_sync"] == 10  # every pair of the five
    assert found.rings.loc[0, "evidence_device"] == 0
    assert set(found.centres["id"]) == {"mSmall"}


def test_peeling_finds_the_dense_block_despite_camouflage() -> None:
    """Rows 0-3 all hit columns 0-3; they also hit the popular column 9 (camouflage) that
    rows 4-11 hit too; the densest block is rows 0-3."""
    dense = [(r, c) for r in range(4) for c in range(4)]
    camo = [(r, 9) for r in range(12)] + [(r, 4 + r % 4) for r in range(4, 12)]
    rows, cols = zip(*(dense + camo), strict=True)
    mat = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(12, 10))
    block, density = peel(mat)
    assert sorted(block.tolist()) == [0, 1, 2, 3]
    assert density > 1.5


def test_stable_ids_keep_id_and_first_seen_and_close_vanished_rings() -> None:
    prev = [PreviousRing("ring-a", frozenset("abcd"), 100, 100, NEW),
            PreviousRing("ring-b", frozenset("xyz"), 50, 100, NEW)]  # fmt: skip
    same, _ = assign_ids([list("abcd")], prev[:1], 100)
    assert same.iloc[0].tolist() == ["ring-a", NEW, 100, 100]  # rerun, same clock: no change
    later, closed = assign_ids([list("abcde"), list("pqr")], prev, 200)
    assert later.iloc[0].tolist() == ["ring-a", GROWN, 100, 200]
    assert later.iloc[1]["status"] == NEW and later.iloc[1]["first_seen"] == 200
    assert [p.ring_id for p in closed] == ["ring-b"]
    again, _ = assign_ids([list("abcde")], [PreviousRing("ring-a", frozenset("abcde"), 100,
                                                         200, GROWN)], 300)  # fmt: skip
    assert again.iloc[0]["status"] == UNCHANGED
    reopened, _ = assign_ids([list("xyz")], [PreviousRing("ring-b", frozenset("xyz"), 50, 100,
                                                          CLOSED)], 300)  # fmt: skip
    assert reopened.iloc[0]["status"] == NEW and reopened.iloc[0]["ring_id"] != "ring-b"


def test_match_planted_counts_rings_members_and_typologies() -> None:
    planted = pd.DataFrame({"ring_id": ["A"] * 4 + ["B"] * 3,
                            "user_id": ["a", "b", "c", "d", "x", "y", "z"]})  # fmt: skip
    detected = pd.DataFrame({"ring_id": ["1"] * 3 + ["2"] * 3,
                             "user_id": ["a", "b", "c", "p", "q", "x"]})  # fmt: skip
    q = match_planted(detected, planted, pd.Series({"A": "farm", "B": "review"}))
    assert (q["recall"], q["precision"], q["found"]) == (0.5, 0.5, 1.0)
    assert q["member_precision"] == 4 / 6 and q["member_recall"] == 4 / 7
    assert (q["recall_farm"], q["recall_review"]) == (1.0, 0.0)


def test_a_review_farm_is_a_ring_by_its_copies_alone_and_one_off_praise_is_not() -> None:
    """f1-f4 each post one template twice at mShop (copy group 0) and the model scores them
    legit; forty customers each write the same short praise once (copy group 1)."""
    farm = [f"f{i}" for i in range(1, 5)]
    crowd = [f"x{i:02d}" for i in range(40)]
    reviews = [(u, "mShop") for u in farm for _ in range(2)] + [(u, "mShop") for u in crowd]
    g = _graph(farm + crowd, [], [], reviews)
    copy_groups = np.array([0] * 8 + [1] * 40)
    risk = np.full(len(g.ids["user"]), 0.01)
    found = detect_rings(g, risk, copy_groups, RingConfig())
    assert _groups(found) == [farm]
    assert found.rings.loc[0, "method"] == "copied_text"
    assert found.rings.loc[0, "evidence_text"] == 0  # accounts under the risk floor form no links
    off = detect_rings(g, risk, copy_groups, RingConfig(copy_repeat=0.0))
    assert len(off.rings) == 0


def test_a_risky_core_vouches_for_its_low_risk_partners_but_not_for_regulars() -> None:
    """c1-c8 act together four times, at a small shop (days 3, 17) and a busy one (days 10,
    24), within hours; the model scores only c1-c4 risky. Ten locals order at the small shop
    on 2 of 60 days each, sixty regulars at the busy shop on 20 of 60 days each (some on the
    ring's days), forty one-off shoppers on the ring's busy days, and h1 shares c1's home
    device and orders once on day 10."""
    rng = np.random.default_rng(0)
    coord = [f"c{i}" for i in range(1, 9)]
    regulars = [f"r{i:02d}" for i in range(60)]
    locals_ = [f"s{i}" for i in range(10)]
    one_off = [f"o{i:02d}" for i in range(40)]
    users = [*coord, *regulars, *locals_, *one_off, "h1"]
    uses = [(u, f"own-{u}") for u in users] + [("c1", "dHome"), ("h1", "dHome")]
    orders = [(u, "mSmall" if day in (3, 17) else "mBusy", day * DAY_MS + 1_800_000 * i)
              for day in (3, 10, 17, 24) for i, u in enumerate(coord)]  # fmt: skip
    orders += [(u, "mBusy", int(d) * DAY_MS + 7_200_000)
               for u in regulars for d in rng.choice(60, 20, replace=False)]  # fmt: skip
    orders += [(u, "mSmall", int(d) * DAY_MS)
               for u in locals_ for d in rng.choice(60, 2, replace=False)]  # fmt: skip
    orders += [(u, "mBusy", (10 if i % 2 else 24) * DAY_MS) for i, u in enumerate(one_off)]
    orders += [("h1", "mBusy", 10 * DAY_MS), ("h1", "mElse", 30 * DAY_MS)]
    g = _graph(users, uses, orders)
    risk = pd.Series(0.01, index=users)
    risk[coord[:4]] = 0.9
    risk = risk.reindex(g.ids["user"]).to_numpy()
    assert _groups(detect_rings(g, risk, None, RingConfig())) == [coord]
    assert _groups(detect_rings(g, risk, None, RingConfig(vouch_chance=0.0))) == [coord[:4]]


def test_a_ring_cut_apart_by_its_devices_is_joined_by_acting_as_one() -> None:
    """f1-f8 share devices only in pairs (f1-f2 on dA, ...) and order together at a busy shop
    on four days, where sixty regulars order on 20 of 60 days each: the busy shop ties nobody
    by itself, so the device pairs are four cores of two; acting as one joins them."""
    rng = np.random.default_rng(1)
    ring = [f"f{i}" for i in range(1, 9)]
    regulars = [f"r{i:02d}" for i in range(60)]
    uses = [(u, f"d{i // 2}") for i, u in enumerate(ring)]
    orders = [(u, "mBusy", day * DAY_MS + 1_800_000 * i)
              for day in (5, 12, 20, 33) for i, u in enumerate(ring)]  # fmt: skip
    orders += [(u, "mBusy", int(d) * DAY_MS + 7_200_000)
               for u in regulars for d in rng.choice(60, 20, replace=False)]  # fmt: skip
    g = _graph(ring + regulars, uses, orders)
    risk = np.where(np.isin(g.ids["user"], ring), 0.9, 0.01)
    assert _groups(detect_rings(g, risk, None, RingConfig())) == [ring]
    assert _groups(detect_rings(g, risk, None, RingConfig(merge_cores=False))) == []


def test_chance_tests_see_the_crowd_a_tie_was_drawn_from() -> None:
    """Same shared hubs, different crowds: a burst pair born in a busy hour and triples of
    strangers at one busy shop are chance; a small cohort and a pair acting together in all
    its windows are not."""
    from graph.rings.chance import burst_chance, core_chance

    # burst: accounts 0 and 1 share two merchants (of 40, each with 50 customers) and an hour
    rng = np.random.default_rng(0)
    n_users, n_merchants = 2000, 40
    rows = np.repeat(np.arange(n_users), 2)
    cols = rng.integers(0, n_merchants, len(rows))
    cols[:4] = [0, 1, 0, 1]
    at = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_merchants))
    at.data[:] = 1.0
    a, b, shared = np.array([0]), np.array([1]), np.array([2.0])
    quiet = np.full(n_users, -1)
    quiet[:2] = 7  # only these two were created in that hour
    busy = np.where(np.arange(n_users) < 1500, 7, -1)  # 1,500 created in that hour
    hubs = np.arange(n_merchants)
    small = burst_chance(at, hubs, quiet, a, b, shared)[0]
    crowded = burst_chance(at, hubs, busy, a, b, shared)[0]
    assert small < 1.0 < crowded

    # core: 200 windows at one busy merchant, 30 accounts active in 10 random windows each
    n_hubs = 200
    u = np.repeat(np.arange(30), 10)
    h = rng.integers(0, n_hubs, len(u))
    h[:20] = np.tile(np.arange(10), 2)  # a pair together in all ten of its windows
    inc = sp.csr_matrix((np.ones(len(u)), (u, h)), shape=(30, n_hubs))
    inc.data[:] = 1.0
    merchant = np.zeros(n_hubs, dtype=np.int64)
    usable = np.ones(n_hubs, dtype=bool)
    strangers = [np.arange(2 + 3 * i, 5 + 3 * i) for i in range(9)]  # 9 triples, no pattern
    figures = core_chance(
        [np.array([0, 1]), *strangers], inc, merchant, np.arange(n_hubs), usable, 10.0
    )
    assert figures[0] < 1.0 < np.median(figures[1:])


def test_exposure_counts_in_blocks_equal_the_whole_product() -> None:
    """Vouching's multiple-testing count, taken a block of cores at a time (bounded memory
    at 1M users), equals the whole accounts x cores product's column counts."""
    from graph.rings.vouch import exposed_counts

    rng = np.random.default_rng(0)
    active = sp.random(400, 30, density=0.1, format="csr", random_state=1)
    active.data[:] = 1.0
    acts = sp.random(25, 30, density=0.15, format="csr", random_state=2)
    acts.data[:] = 1.0
    whole = np.asarray(((active @ acts.T) > 0).sum(axis=0)).ravel()
    assert whole.sum() > 0
    for block in (None, 1, 37, int(rng.integers(50, 500))):
        np.testing.assert_array_equal(exposed_counts(active, acts, block), whole)
