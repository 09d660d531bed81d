"""What the generator is asked for (``GeneratorConfig``), what it reports back
(``GenerationSummary``), and the check that rejects a config it cannot honour."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate. Each fraud typology can be switched off to study detectors in isolation.

    Typologies (ground truth in truth.csv and rings.csv):
        device_farm_rings: bursts of 5-30 accounts created within two days that share 1-3
            devices and place high-value orders in a 1-3 day window, ~40-60% chargebacks.
        review_rings: 8-25 accounts that place small paid orders on one colluding merchant's
            products, then post near-duplicate five-star reviews (copies and paraphrases).
        lone_fraud_share: fraudsters outside rings, with 15-35% chargebacks, so that fraud
            is not only rings. All fraud accounts also place ordinary camouflage orders.
        bust_out_share: accounts that look good (legit-like KYC and email age, created 3-16
            months before the spike) and pay for ordinary orders with few refunds, then place
            6-15 high-value orders in a 2-7 day window ending 0-7 days before the span's end
            and never pay: 75-95% of the spike is `cancelled` (the bundle's status for an order
            never paid for), no chargebacks. Truth: fraud=1, default=1. 0 switches it off.
        account_takeover_share: legit accounts (at least a month old, ordinary history) taken
            over after the first quarter of the span: a login from a NEW device (first_seen is
            the takeover), then 2-8 high-value orders on that device within 2-48 hours, 50-90%
            charged back by the real card holder. The owner's own orders and logins stop at
            the takeover. Truth: fraud=1; default follows the owner's own credit behaviour,
            scored like a legit user on the pre-takeover orders (the victim owes nothing for
            the attacker's orders; that loss is fraud, not credit). 0 switches it off.
        coordinated_ring_share: share of users in coordinated rings of 6-20 accounts, each
            member on its own devices, joined only by synchronised activity: in 3-6 windows
            over 10-40 days, most members order (coordinated: and review, 4-5 stars, varied
            text) at one of the ring's three merchants (two small shops, one popular
            merchant) within 0.5-3 hours of each other; 10-30% of these orders charged back.
            Members are recruited over 5-40 days before the first window and shop ordinarily
            besides (camouflage). Typology `coordinated_ring`, listed in rings.csv. 0: off.
        fragmented_ring_share: share of users in fragmented rings of 8-24 accounts that act
            together the same way (spread 1-5 hours, 30-50% chargebacks) and share a device
            only occasionally: cells of 2-4 members each share one device, no device spans
            two cells, so the user-device components cut the ring into pieces. Typology
            `fragmented_ring`, listed in rings.csv. 0: off.
    Realism (each None or 0 is off, and the marketplace is then what it was without the knob):
        fraud_recency: the share of accounts opened by fraudsters (rings and lone fraud; not
            bust-out or takeover, which are established accounts by design) created in the
            last quarter of the span, e.g. 0.7; the rest are created before it. Whole rings
            move together, lone fraudsters fill the remainder, so the share is met to within
            a ring's size at most (to the account when there are enough lone fraudsters).
        label_maturity_days: outcomes become known only once they have had time to show:
            a chargeback arrives 0.5-1.5 times this delay after its order and is reported
            within three days; fraud without chargebacks is found the same delay after its
            first fraudulent order; a clean account is called clean once it is this old.
            Only labels known by the span's end are exported, so the newest accounts are
            the least labelled. labels.csv's `observed_at` always carries this time (with
            the knob off: from a 30-day delay, capped at the span's end, since the export
            then knows every sampled outcome, due or not).
        camouflage_share: the share of a fraud account's orders that are ordinary,
            legit-looking orders (legit status rates, popular products, spread over the
            account's life): 0 leaves only the fraudulent orders, 0.8 adds four ordinary
            orders per fraudulent one. All fraud but account takeover (whose ordinary orders
            are the victim's own). None keeps the built-in mix.
    `GeneratorConfig.realistic(n_users, seed)` switches the realistic knobs on together.
    truth.csv names each user's planted typology in `typology`: legit, device_farm,
    review_ring, lone, bust_out, account_takeover, coordinated_ring or fragmented_ring.
    Hard negatives (legit users): households sharing a family device, and public devices
    (cafe, library) used by 20-100 users each, so that device sharing alone is not fraud.
    """

    n_users: int = 10_000
    seed: int = 0
    start: str = "2026-01-01T00:00:00Z"
    days: int = 180
    device_farm_rings: bool = True
    ring_share: float = 0.03
    review_rings: bool = True
    review_ring_count: int | None = None  # None: one per 5,000 users, at least one
    lone_fraud_share: float = 0.01
    bust_out_share: float = 0.005
    account_takeover_share: float = 0.005
    household_share: float = 0.15
    public_devices: bool = True
    label_observed: float = 0.6
    label_noise: float = 0.01
    unknown_default_share: float = 0.02  # of observed users, with an empty `default`
    default_rate: float = 0.04  # credit defaults among non-fraud users
    review_rate: float = 0.2  # chance an ordinary paid/refunded order gets reviewed
    old_account_share: float = 0.15  # accounts created up to two years before `start`
    coordinated_ring_share: float = 0.0
    fragmented_ring_share: float = 0.0
    fraud_recency: float | None = None
    label_maturity_days: float | None = None
    camouflage_share: float | None = None

    @classmethod
    def realistic(
        cls, n_users: int = 10_000, seed: int = 0, **overrides: object
    ) -> GeneratorConfig:
        """A marketplace closer to what real teams see: 70% of the fraud opened in the last
        quarter, labels a month late, coordinated and fragmented rings about as many as the
        device farms (~15 and ~12 per 10,000 users, against ~17 farms)."""
        settings: dict[str, object] = {
            "fraud_recency": 0.7,
            "label_maturity_days": 30.0,
            "coordinated_ring_share": 0.02,
            "fragmented_ring_share": 0.02,
            **overrides,
        }
        return cls(n_users=n_users, seed=seed, **settings)  # type: ignore[arg-type]


@dataclass(frozen=True)
class GenerationSummary:
    """What was written: rows per bundle table and the size of the planted truth."""

    out_dir: Path
    counts: dict[str, int]
    n_fraud: int
    n_default: int
    n_rings: int


def check_config(config: GeneratorConfig) -> None:
    """Reject configs the generator cannot honour rather than silently bending them."""
    if config.n_users < 100 or config.days < 30:
        raise ValueError("need n_users >= 100 and days >= 30")
    shares = (
        config.ring_share,
        config.household_share,
        config.label_observed,
        config.label_noise,
        config.lone_fraud_share,
        config.bust_out_share,
        config.account_takeover_share,
        config.default_rate,
        config.coordinated_ring_share,
        config.fragmented_ring_share,
        1.0 if config.fraud_recency is None else config.fraud_recency,
    )
    if not all(0.0 <= share <= 1.0 for share in shares):
        raise ValueError("shares and rates must lie in [0, 1]")
    if config.camouflage_share is not None and not 0.0 <= config.camouflage_share < 1.0:
        raise ValueError("camouflage_share must lie in [0, 1): at 1 fraud would place no fraud")
    maturity = config.label_maturity_days
    if maturity is not None and not 0.0 < maturity < config.days:
        raise ValueError("label_maturity_days must be positive and shorter than the span")


def epoch_seconds(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())
