"""Ring-detection settings: every weight and threshold in one typed place.

None of these numbers is tuned to how our generator plants fraud: hub weights come from how
many accounts share a hub (rarity) and how risky they are (purity), and the defaults were
checked on marketplaces with households, kiosks and camouflage (see docs/rings.md).
"""

from __future__ import annotations

from dataclasses import dataclass

EVIDENCE_KINDS: tuple[str, ...] = ("device", "sync", "text", "burst")
METHODS: tuple[str, ...] = ("communities", "dense", "both")


@dataclass(frozen=True)
class RingConfig:
    """How evidence links are built and how rings are cut from them.

    Attributes:
        kinds: evidence kinds switched on (a subset of :data:`EVIDENCE_KINDS`).
        kind_weights: multiplier per kind, aligned with ``kinds``.
        rarity_power: a hub shared by ``n`` accounts gives each pair ``(n - 1) ** -rarity_power``
            (1 for two accounts on one device, 0.06 for a kiosk used by 300).
        max_hub_users: hubs shared by more accounts make no pairs at all (their weight would
            be negligible and their pair count quadratic).
        sync_window_s: length of the windows in which activity at one merchant is "together".
        sync_min_windows: a pair counts as synchronised only in this many distinct windows.
        link_chance: a synchronised-activity or creation-burst link counts only when fewer
            than this many accounts are expected to tie to either end as strongly by chance
            (see :mod:`graph.rings.chance`); 0 switches the test off.
        chance_kinds: the kinds ``link_chance`` tests (``burst``, ``sync``). Synchronised
            activity is not tested by default: a ring's members tie pair by pair no less by
            chance than strangers do (docs/rings.md), its evidence is the ring as a whole.
        core_chance: a community ring that no shared device binds stands only when fewer
            than this many groups (of all ``min_size`` groups of accounts that could form a
            core) are expected to be as co-active by chance (see
            :func:`graph.rings.chance.core_chance`); 0 switches the test off.
        vouch_chance: a low-risk account joins a ring's risky core by repeated synchronised
            activity with it only when fewer than this many accounts are expected to do as
            much by chance (see :mod:`graph.rings.vouch`); 0 switches vouching off.
        vouch_share: a core's *acts* are the windows where this share of its members (and at
            least two) are active; a vouched account spends at least this share of its
            windows at the acts' merchants in them.
        merge_cores: join cores that vouch for at least ``vouch_share`` of each other's
            members (a ring cut apart along its devices); see :func:`graph.rings.vouch.merge_cores`.
        burst_window_s: accounts created in the same window of this length form a burst.
        copy_repeat: a copy group whose authors post, on average, at least this many of
            its copies each is a ring by its text alone (see ``copy_rings``); 0 switches off.
        top_links: links kept per account (the strongest), so the linkage stays small.
        link_risk_floor: accounts below this risk take no part in linkage at all.
        risk_threshold: accounts at or above this risk count as risky (hub purity, rings).
        member_floor: ring members need at least this risk (``None``: ``risk_threshold``);
            below ``risk_threshold`` an account joins only through its links to a ring.
        ring_min_risk: the mean risk of a ring's core (its members at or above
            ``member_floor``; vouched members are not counted) must reach this.
        min_link_weight: ring-graph links weaker than this are dropped.
        min_size / max_size: ring size bounds; larger communities are split again.
        method: ``communities`` (Leiden on the link graph), ``dense`` (FRAUDAR-style peeling
            over user x (merchant, window)) or ``both`` (dense blocks added where no community
            covers them).
        objective: Leiden's objective: ``CPM`` (constant Potts: a community's links must
            average at least ``resolution`` in weight, whatever the graph's size),
            ``modularity`` (resolution-limited: small rings merge in a large graph) or
            ``none`` (connected components only).
        resolution: the CPM weight threshold (or modularity resolution).
        purity: scale ring-graph hubs by the share of their accounts that look risky.
        seed: Leiden's random seed (same graph and seed, same rings).
    """

    kinds: tuple[str, ...] = EVIDENCE_KINDS
    kind_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 0.5)
    rarity_power: float = 0.5
    max_hub_users: int = 500
    sync_window_s: int = 86_400
    sync_min_windows: int = 2
    link_chance: float = 1.0
    chance_kinds: tuple[str, ...] = ("burst",)
    core_chance: float = 1.0
    vouch_chance: float = 1.0
    vouch_share: float = 0.5
    merge_cores: bool = True
    burst_window_s: int = 3_600
    copy_repeat: float = 1.5
    top_links: int = 15
    link_risk_floor: float = 0.05
    risk_threshold: float = 0.5
    member_floor: float | None = 0.05
    ring_min_risk: float = 0.3
    min_link_weight: float = 0.05
    min_size: int = 3
    max_size: int = 100
    method: str = "communities"
    objective: str = "CPM"
    resolution: float = 0.02
    purity: bool = True
    seed: int = 0

    def weight_of(self, kind: str) -> float:
        return dict(zip(self.kinds, self.kind_weights, strict=False)).get(kind, 0.0)
