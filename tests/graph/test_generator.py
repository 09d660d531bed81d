"""Tests for the synthetic marketplace generator: bundle contract, determinism, planted truth."""

from __future__ import annotations

from difflib import SequenceMatcher
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graph.synth import fraud as fraud
from graph.synth import writer as csv
from graph.synth.marketplace import GenerationSummary, GeneratorConfig, generate_marketplace

N_USERS = 1500
CONFIG = GeneratorConfig(n_users=N_USERS, seed=7)
TYPOLOGIES = {"legit", "device_farm", "review_ring", "lone", "bust_out", "account_takeover"}
REQUIRED = {
    "users": ["user_id", "created_at"],
    "merchants": ["merchant_id", "created_at", "category"],
    "products": ["product_id", "merchant_id", "category", "price"],
    "devices": ["device_id", "kind", "first_seen"],
    "logins": ["user_id", "device_id", "ts"],
    "orders": ["order_id", "user_id", "product_id", "amount", "ts", "status"],
    "reviews": ["review_id", "user_id", "product_id", "rating", "text", "ts"],
    "labels": ["user_id", "fraud", "default"],
    "rings": ["ring_id", "user_id"],
}
OPTIONAL = {
    "users": {"country", "feat_kyc_level", "feat_email_age_days"},
    "orders": {"device_id"},
    "labels": {"observed_at"},
}
TIME_COLUMNS = {
    "users": "created_at",
    "merchants": "created_at",
    "devices": "first_seen",
    "logins": "ts",
    "orders": "ts",
    "reviews": "ts",
    "labels": "observed_at",
}

Bundle = dict[str, pd.DataFrame]


def _read(out_dir: Path) -> Bundle:
    """Read every table as strings, the way an importer must (ids stay strings, '' stays '')."""
    names = [*REQUIRED, "truth"]
    return {
        name: pd.read_csv(out_dir / f"{name}.csv", dtype=str, keep_default_na=False)
        for name in names
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerationSummary, Bundle]:
    out_dir = tmp_path_factory.mktemp("bundle")
    summary = generate_marketplace(CONFIG, out_dir)
    return summary, _read(out_dir)


@pytest.fixture(scope="module")
def bundle(generated: tuple[GenerationSummary, Bundle]) -> Bundle:
    return generated[1]


def _file_bytes(out_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out_dir.glob("*.csv"))}


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path: Path) -> None:
    config = GeneratorConfig(n_users=1000, seed=3)
    generate_marketplace(config, tmp_path / "a")
    generate_marketplace(config, tmp_path / "b")
    generate_marketplace(GeneratorConfig(n_users=1000, seed=4), tmp_path / "c")
    first, again, other = (_file_bytes(tmp_path / name) for name in "abc")
    assert len(first) == 10
    assert first == again
    assert first["orders.csv"] != other["orders.csv"]
    assert first["reviews.csv"] != other["reviews.csv"]


def test_tables_have_required_columns_and_summary_counts(
    generated: tuple[GenerationSummary, Bundle],
) -> None:
    summary, tables = generated
    for name, required in REQUIRED.items():
        columns = list(tables[name].columns)
        assert columns[: len(required)] == required, name
        assert set(columns) - set(required) <= OPTIONAL.get(name, set()), name
        assert summary.counts[name] == len(tables[name]), name
    assert summary.counts["users"] == N_USERS
    assert summary.n_fraud == int(tables["truth"]["fraud"].astype(int).sum())
    assert summary.n_rings == tables["rings"]["ring_id"].nunique()


def test_ids_are_unique_prefixed_strings(bundle: Bundle) -> None:
    for table, column, prefix in [
        ("users", "user_id", "U"),
        ("merchants", "merchant_id", "M"),
        ("products", "product_id", "P"),
        ("devices", "device_id", "D"),
        ("orders", "order_id", "O"),
        ("reviews", "review_id", "R"),
    ]:
        ids = bundle[table][column]
        assert ids.is_unique, table
        assert ids.str.fullmatch(prefix + r"\d{6,}").all(), table
    assert bundle["rings"]["ring_id"].str.fullmatch(r"RING\d{4}").all()


def test_every_reference_exists(bundle: Bundle) -> None:
    users = set(bundle["users"]["user_id"])
    products = set(bundle["products"]["product_id"])
    devices = set(bundle["devices"]["device_id"])
    orders, reviews, logins = bundle["orders"], bundle["reviews"], bundle["logins"]
    assert set(bundle["products"]["merchant_id"]) <= set(bundle["merchants"]["merchant_id"])
    assert set(orders["user_id"]) <= users and set(orders["product_id"]) <= products
    assert set(orders["device_id"]) - {""} <= devices
    assert set(reviews["user_id"]) <= users and set(reviews["product_id"]) <= products
    assert set(logins["user_id"]) <= users and set(logins["device_id"]) == devices
    for table in ("labels", "rings", "truth"):
        assert set(bundle[table]["user_id"]) <= users, table


def test_enums_ranges_and_timestamps(bundle: Bundle) -> None:
    assert set(bundle["devices"]["kind"]) <= {"ios", "android", "web", "other"}
    assert set(bundle["orders"]["status"]) == {"paid", "refunded", "chargeback", "cancelled"}
    assert bundle["reviews"]["rating"].astype(int).between(1, 5).all()
    assert (bundle["orders"]["amount"].astype(float) >= 0).all()
    assert (bundle["products"]["price"].astype(float) > 0).all()
    assert set(bundle["labels"]["fraud"]) <= {"0", "1"}
    assert set(bundle["labels"]["default"]) <= {"0", "1", ""}
    for table, column in TIME_COLUMNS.items():
        stamps = bundle[table][column]
        assert stamps.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all(), table
        assert pd.to_datetime(stamps, format="ISO8601", utc=True).notna().all(), table


def test_activity_never_predates_the_account(bundle: Bundle) -> None:
    created = pd.to_datetime(bundle["users"].set_index("user_id")["created_at"], utc=True)
    for table in ("orders", "reviews", "logins"):
        rows = bundle[table]
        when = pd.to_datetime(rows["ts"], utc=True)
        assert (when.to_numpy() >= created.loc[rows["user_id"]].to_numpy()).all(), table


def test_order_statuses_have_realistic_base_rates(bundle: Bundle) -> None:
    orders = bundle["orders"].merge(bundle["truth"], on="user_id")
    legit = orders[orders["fraud"] == "0"]["status"].value_counts(normalize=True)
    assert 0.85 < legit["paid"] < 0.95
    assert 0.03 < legit["refunded"] < 0.08
    assert legit["chargeback"] < 0.01
    assert 60 * N_USERS / 10 < len(orders) < 200 * N_USERS / 10


def test_review_texts_are_varied_and_survive_csv_quoting(bundle: Bundle) -> None:
    texts = bundle["reviews"]["text"]
    words = texts.str.split().str.len()
    assert texts.nunique() > 0.6 * len(texts)
    assert words.min() <= 4 and words.max() >= 60
    assert texts.str.contains(",").any() and texts.str.contains("\n").any()
    assert texts.str.contains('"').any()


def _ring_devices(bundle: Bundle) -> pd.Series:
    logins = bundle["logins"].merge(bundle["rings"], on="user_id")
    return logins.groupby("ring_id")["device_id"].nunique()


def test_device_farm_rings_share_few_devices_and_charge_back(bundle: Bundle) -> None:
    devices_per_ring = _ring_devices(bundle)
    farms = devices_per_ring[devices_per_ring <= 3].index
    assert len(farms) >= 1
    members = bundle["rings"][bundle["rings"]["ring_id"].isin(farms)]
    assert members.groupby("ring_id").size().between(5, 30).all()
    orders = bundle["orders"].merge(bundle["truth"], on="user_id")
    in_farm = orders["user_id"].isin(members["user_id"])
    farm_rate = (orders[in_farm]["status"] == "chargeback").mean()
    legit_rate = (orders[orders["fraud"] == "0"]["status"] == "chargeback").mean()
    assert farm_rate > 0.2 and farm_rate > 10 * legit_rate
    truth = bundle["truth"].set_index("user_id")["fraud"]
    assert (truth.loc[bundle["rings"]["user_id"]] == "1").all()
    assert (truth == "1").mean() < 0.1


def test_review_ring_posts_near_duplicate_five_stars_on_one_merchant(bundle: Bundle) -> None:
    devices_per_ring = _ring_devices(bundle)
    review_rings = devices_per_ring[devices_per_ring > 3].index
    assert len(review_rings) >= 1
    reviews = bundle["reviews"].merge(bundle["products"], on="product_id")
    for ring_id in review_rings:
        members = bundle["rings"][bundle["rings"]["ring_id"] == ring_id]["user_id"]
        assert 8 <= len(members) <= 25
        fives = reviews[reviews["user_id"].isin(members) & (reviews["rating"] == "5")]
        merchant = fives["merchant_id"].mode()[0]
        boosted = fives[fives["merchant_id"] == merchant]["text"]
        assert len(boosted) >= len(members)
        template = boosted.mode()[0]
        assert (boosted == template).sum() >= 3  # exact copies
        similarity = [SequenceMatcher(None, template, text).ratio() for text in boosted]
        close = sum(ratio > 0.6 for ratio in similarity)  # paraphrases of the template
        assert close >= 0.8 * len(boosted)  # the rest: camouflage reviews of real orders


def test_households_and_public_devices_are_legit_sharing(bundle: Bundle) -> None:
    logins = bundle["logins"].merge(bundle["truth"], on="user_id")
    per_device = logins.groupby("device_id").agg(
        users=("user_id", "nunique"), fraud=("fraud", lambda f: (f == "1").any())
    )
    legit_shared = per_device[~per_device["fraud"]]
    assert (legit_shared["users"].between(2, 5)).sum() >= 20  # households
    assert (legit_shared["users"] >= 20).sum() >= 2  # cafe/library devices


def test_labels_are_partial_noisy_and_default_rate_plausible(bundle: Bundle) -> None:
    labels, truth = bundle["labels"], bundle["truth"]
    assert abs(len(labels) / N_USERS - 0.6) < 0.05
    assert (labels["default"] == "").any()
    joined = labels.merge(truth, on="user_id", suffixes=("", "_true"))
    assert 0.95 < (joined["fraud"] == joined["fraud_true"]).mean() < 1.0
    default_rate = (truth["default"] == "1").mean()
    assert 0.04 < default_rate < 0.11
    fraud = truth[truth["fraud"] == "1"]
    assert (fraud["default"] == "1").mean() > 0.6


def test_typologies_can_be_switched_off(tmp_path: Path) -> None:
    config = GeneratorConfig(
        n_users=500,
        seed=1,
        device_farm_rings=False,
        review_rings=False,
        household_share=0.0,
        public_devices=False,
        bust_out_share=0.0,
        account_takeover_share=0.0,
    )
    summary = generate_marketplace(config, tmp_path)
    tables = _read(tmp_path)
    assert summary.n_rings == 0 and tables["rings"].empty
    assert list(tables["rings"].columns) == REQUIRED["rings"]
    assert tables["logins"].groupby("device_id")["user_id"].nunique().max() == 1
    assert summary.n_fraud == round(0.01 * 500)
    assert set(tables["truth"]["typology"]) == {"legit", "lone"}


@pytest.mark.parametrize(
    ("switch", "typology"),
    [("bust_out_share", "bust_out"), ("account_takeover_share", "account_takeover")],
)
def test_new_typologies_switch_off_alone(tmp_path: Path, switch: str, typology: str) -> None:
    on = {"bust_out_share": 0.02, "account_takeover_share": 0.02}
    generate_marketplace(GeneratorConfig(n_users=500, seed=2, **{**on, switch: 0.0}), tmp_path)
    typologies = _read(tmp_path)["truth"]["typology"].value_counts()
    assert typology not in typologies
    assert set(typologies.index) == TYPOLOGIES - {typology}


def _typology_counts(config: GeneratorConfig, tables: Bundle) -> None:
    """Each planted typology holds the share of users its config asks for."""
    truth = tables["truth"]
    assert list(truth.columns) == ["user_id", "fraud", "default", "typology"]
    assert set(truth["typology"]) == TYPOLOGIES
    assert ((truth["typology"] != "legit") == (truth["fraud"] == "1")).all()
    n = config.n_users
    share = truth["typology"].value_counts() / n
    assert abs(share["device_farm"] - config.ring_share) <= 5 / n  # whole rings of 5-30
    for typology, wanted in [
        ("lone", config.lone_fraud_share),
        ("bust_out", config.bust_out_share),
        ("account_takeover", config.account_takeover_share),
    ]:
        assert abs(share[typology] - wanted) <= 1 / n, typology
    review = truth[truth["typology"] == "review_ring"]["user_id"]
    rings = tables["rings"][tables["rings"]["user_id"].isin(review)]
    n_review_rings = config.review_ring_count or max(1, round(n / 5000))
    assert rings["ring_id"].nunique() == n_review_rings
    assert 8 * n_review_rings <= len(review) <= 25 * n_review_rings
    # Households: legit-only devices shared by 2-5 users (own devices have one, public 20+).
    logins = tables["logins"].merge(truth, on="user_id")
    per_device = logins.groupby("device_id").agg(
        users=("user_id", "nunique"), legit=("typology", lambda t: (t == "legit").all())
    )
    family = per_device[per_device["legit"] & per_device["users"].between(2, 5)].index
    members = logins[logins["device_id"].isin(family)]["user_id"].nunique()
    n_legit = (truth["typology"] == "legit").sum()
    assert abs(members / n_legit - config.household_share) <= 5 / n_legit + 0.005


def test_typologies_in_configured_proportion(bundle: Bundle) -> None:
    _typology_counts(CONFIG, bundle)


def test_typology_proportions_follow_a_non_default_config(tmp_path: Path) -> None:
    config = GeneratorConfig(
        n_users=2000,
        seed=5,
        ring_share=0.05,
        review_ring_count=3,
        lone_fraud_share=0.02,
        bust_out_share=0.02,
        account_takeover_share=0.03,
        household_share=0.3,
    )
    generate_marketplace(config, tmp_path)
    _typology_counts(config, _read(tmp_path))


def _orders_of(bundle: Bundle, typology: str) -> pd.DataFrame:
    truth = bundle["truth"]
    users = truth[truth["typology"] == typology]["user_id"]
    assert len(users) >= 5
    orders = bundle["orders"][bundle["orders"]["user_id"].isin(users)].copy()
    orders["ts"] = pd.to_datetime(orders["ts"], utc=True)
    orders["amount"] = orders["amount"].astype(float)
    assert set(orders["user_id"]) == set(users)
    return orders


def test_bust_out_builds_a_clean_history_then_spikes_late_and_defaults(bundle: Bundle) -> None:
    orders = _orders_of(bundle, "bust_out")
    span_end = pd.to_datetime(bundle["orders"]["ts"], utc=True).max()
    last = orders.groupby("user_id")["ts"].transform("max")
    late = orders["ts"] >= last - pd.Timedelta(days=7)  # the spike lasts 2-7 days
    value = orders.groupby("user_id")["amount"].sum()
    late_share = orders[late].groupby("user_id")["amount"].sum() / value
    assert (late_share > 0.5).all()  # most of the value in one late week
    assert (span_end - last.groupby(orders["user_id"]).max() < pd.Timedelta(days=10)).all()
    first = orders.groupby("user_id")["ts"].min()
    assert (last.groupby(orders["user_id"]).max() - first > pd.Timedelta(days=60)).all()
    early = orders[~late]["status"].value_counts(normalize=True)
    assert early.get("paid", 0) > 0.9 and early.get("chargeback", 0) < 0.02
    spike = orders[late]["status"].value_counts(normalize=True)
    assert spike.get("cancelled", 0) > 0.6  # never paid for
    assert "chargeback" not in spike
    truth = bundle["truth"][bundle["truth"]["typology"] == "bust_out"]
    assert (truth["fraud"] == "1").all() and (truth["default"] == "1").all()
    # Legit users do not look like this: their value is spread over the span.
    legit = bundle["orders"].merge(bundle["truth"], on="user_id")
    legit = legit[legit["typology"] == "legit"]
    legit_ts = pd.to_datetime(legit["ts"], utc=True)
    legit_last = legit_ts.groupby(legit["user_id"]).transform("max")
    amount = legit["amount"].astype(float)
    legit_late = (
        amount[legit_ts >= legit_last - pd.Timedelta(days=7)].groupby(legit["user_id"]).sum()
        / amount.groupby(legit["user_id"]).sum()
    )
    assert legit_late.median() < 0.5


def test_account_takeover_uses_a_new_device_for_a_high_value_spree(bundle: Bundle) -> None:
    orders = _orders_of(bundle, "account_takeover")
    devices = bundle["devices"].set_index("device_id")
    first_seen = pd.to_datetime(devices["first_seen"], utc=True)
    logins = bundle["logins"]
    users_per_device = logins.groupby("device_id")["user_id"].nunique()
    before, after = [], []
    for user_id, mine in orders.groupby("user_id"):
        used = logins[logins["user_id"] == user_id]["device_id"].unique()
        new_device = first_seen.loc[used].idxmax()
        takeover = first_seen[new_device]
        assert users_per_device[new_device] == 1  # the attacker's own device
        early, late = mine[mine["ts"] < takeover], mine[mine["ts"] >= takeover]
        assert len(early) >= 1 and len(late) >= 2
        assert (early["device_id"] != new_device).all()  # the device is new at the takeover
        assert (late["device_id"] == new_device).all()  # the spree runs on it
        assert late["ts"].max() - takeover <= pd.Timedelta(days=2)
        own = logins[(logins["user_id"] == user_id) & (logins["device_id"] != new_device)]
        assert (pd.to_datetime(own["ts"], utc=True) < takeover).all()  # owner locked out
        before.append(early)
        after.append(late)
    early, late = pd.concat(before), pd.concat(after)
    assert late["amount"].median() > 2 * early["amount"].median()
    assert (late["status"] == "chargeback").mean() > 0.4
    assert (early["status"] == "chargeback").mean() < 0.05
    truth = bundle["truth"][bundle["truth"]["typology"] == "account_takeover"]
    assert (truth["fraud"] == "1").all()


def test_every_farm_device_has_a_user() -> None:
    """Tiny rings draw few optional device slots: the leader still uses every device."""
    n_rings, size = 2000, 5
    role = np.full(n_rings * size, fraud.FARM, dtype=np.int8)
    ring = np.repeat(np.arange(n_rings), size)
    plan = fraud.RolePlan(role, ring, n_rings, 0)
    users, devices, n_devices = fraud.farm_device_edges(np.random.default_rng(0), plan)
    assert np.array_equal(np.unique(devices), np.arange(n_devices))
    owner = np.full(n_devices, -1)
    owner[devices] = ring[users]
    assert (owner[devices] == ring[users]).all()  # a device serves one ring only


def test_csv_writer_matches_pandas_to_csv(tmp_path: Path) -> None:
    frame = {
        "id": csv.ids("U", np.array([0, 9, 99_998]), 5),
        "when": csv.iso(np.array([0, 951_782_400, 4_107_542_399])),  # 1970, 2000-02-29, 2100
        "text": np.array(["plain", 'a, "quoted"\nline', "ünïcode ✓"], dtype=object),
        "amount": np.array([12.5, np.nan, -0.004]),
        "count": pd.array([1, None, 3], dtype="Int64"),
        "flag": np.array([1, 0, 1]),
    }
    csv.write_csv(tmp_path / "fast.csv", frame, chunk_rows=2)
    expected = pd.DataFrame(
        {k: v.to_pandas() if hasattr(v, "to_pandas") else v for k, v in frame.items()}
    )
    expected.to_csv(tmp_path / "pandas.csv", index=False, lineterminator="\n", float_format="%.2f")
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
    text = (tmp_path / "fast.csv").read_text(encoding="utf-8")
    assert "U00001,1970-01-01T00:00:00Z,plain,12.50,1,1" in text
    assert "2000-02-29T00:00:00Z" in text and "2100-02-28T23:59:59Z" in text
    with pytest.raises(ValueError, match="outside years"):
        csv.iso(np.array([np.iinfo(np.int64).max]))
