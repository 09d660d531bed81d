"""Tests for the generator's realistic knobs: rings that hide their devices, ``observed_at``,
fraud recency, label maturity and camouflage.

Each test checks the share or property its knob promises and, where a knob could silently do
nothing, the same marketplace with the knob off, so that a no-op fails.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from typer.testing import CliRunner

from graph.bundle import read_bundle
from graph.synth import fraud as fraud
from graph.synth.marketplace import GeneratorConfig, generate_marketplace
from graph.synth.simulation import simulate

N_USERS = 4000
REALISTIC = GeneratorConfig.realistic(N_USERS, seed=11)
START = pd.Timestamp("2026-01-01", tz="UTC")
END = START + pd.Timedelta(days=180)
QUARTER = START + pd.Timedelta(days=135)
OPENED = ["device_farm", "review_ring", "lone", "coordinated_ring", "fragmented_ring"]
TABLES = ["users", "products", "devices", "logins", "orders", "reviews", "labels", "rings", "truth"]

Bundle = dict[str, pd.DataFrame]


def _generate(config: GeneratorConfig, out_dir: Path) -> Bundle:
    generate_marketplace(config, out_dir)
    tables = {
        name: pd.read_csv(out_dir / f"{name}.csv", dtype=str, keep_default_na=False)
        for name in TABLES
    }
    created = tables["users"].set_index("user_id")["created_at"]
    tables["truth"]["created"] = pd.to_datetime(tables["truth"]["user_id"].map(created), utc=True)
    for name in ("orders", "reviews", "logins"):
        tables[name]["ts"] = pd.to_datetime(tables[name]["ts"], utc=True)
    merchant = tables["products"].set_index("product_id")["merchant_id"]
    tables["orders"]["merchant_id"] = tables["orders"]["product_id"].map(merchant)
    return tables


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return _generate(REALISTIC, tmp_path_factory.mktemp("realistic"))


def _members(bundle: Bundle, typology: str) -> pd.DataFrame:
    truth = bundle["truth"]
    users = truth[truth["typology"] == typology]["user_id"]
    return bundle["rings"][bundle["rings"]["user_id"].isin(users)]


def _bursts(orders: pd.DataFrame, gap_hours: float = 12) -> tuple[pd.DataFrame, pd.Series]:
    """Runs of orders at one merchant with no gap over ``gap_hours``: per run, its users,
    merchant and length in hours; and each order's run."""
    orders = orders.sort_values(["merchant_id", "ts"])
    new = (orders["merchant_id"] != orders["merchant_id"].shift()) | (
        orders["ts"].diff() > pd.Timedelta(hours=gap_hours)
    )
    run = new.cumsum()
    runs = (
        orders.assign(burst=run)
        .groupby("burst")
        .agg(
            members=("user_id", "nunique"),
            merchant=("merchant_id", "first"),
            hours=("ts", lambda t: (t.max() - t.min()).total_seconds() / 3600),
        )
    )
    return runs, run


def _synchronised(bundle: Bundle, users: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs where at least a third of the group (and three users) order together; and the
    group's orders, flagged ``together`` when in such a run."""
    orders = bundle["orders"][bundle["orders"]["user_id"].isin(users)]
    runs, run = _bursts(orders)
    together = runs[runs["members"] >= max(3, len(users) // 3)]
    return together, orders.assign(together=run.isin(together.index))


def _check_rings_act_in_sync(bundle: Bundle, typology: str, max_hours: float) -> None:
    """Every ring orders together in repeated windows, some at a popular merchant; members
    also shop on their own (camouflage); random legit groups of the same sizes never do."""
    members = _members(bundle, typology)
    popular = set(bundle["orders"]["merchant_id"].value_counts().index[:10])
    at_popular, own_share = [], []
    for _, ring in members.groupby("ring_id"):
        together, mine = _synchronised(bundle, ring["user_id"])
        assert len(together) >= 2, "a ring acts together in several windows"
        # within hours (a run at a popular merchant may absorb members' own orders there)
        assert (together["hours"] <= max_hours).mean() >= 0.5
        at_popular.append(together["merchant"].isin(popular).mean())
        own_share.append((~mine["together"]).groupby(mine["user_id"]).mean().median())
    assert 0.05 < np.mean(at_popular) < 0.8  # popular merchants too, not only colluding ones
    assert np.median(own_share) > 0.3  # ordinary shopping elsewhere
    truth = bundle["truth"]
    legit = truth[truth["typology"] == "legit"]["user_id"].to_numpy()
    rng = np.random.default_rng(0)
    sizes = members.groupby("ring_id").size().to_numpy()
    false_sync = [
        len(_synchronised(bundle, pd.Series(rng.choice(legit, size, replace=False)))[0])
        for size in sizes
    ]
    assert np.mean(false_sync) < 0.5  # every ring has two or more


def test_labels_carry_observed_at_and_still_import(tmp_path: Path) -> None:
    bundle = _generate(GeneratorConfig(n_users=3000, seed=4), tmp_path)
    labels = bundle["labels"]
    assert list(labels.columns) == ["user_id", "fraud", "default", "observed_at"]
    assert labels["observed_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    rows = labels.merge(bundle["truth"], on="user_id", suffixes=("", "_true"))
    known = pd.to_datetime(rows["observed_at"], utc=True)
    assert (known <= END).all()
    # Clean accounts: known once a month old (30-day delay, up to 3 days to report).
    legit = rows["fraud_true"] == "0"
    age = known[legit] - rows["created"][legit]
    due = (age >= pd.Timedelta(days=30)) & (age <= pd.Timedelta(days=33))
    assert (due | (known[legit] == END)).all()
    assert due.mean() > 0.7
    # Fraud with a chargeback: known after the first chargeback has had time to arrive.
    orders = bundle["orders"]
    first_cb = orders[orders["status"] == "chargeback"].groupby("user_id")["ts"].min()
    fraud_cb = rows[(rows["fraud_true"] == "1") & rows["user_id"].isin(first_cb.index)]
    assert len(fraud_cb) >= 20
    earliest = (first_cb.loc[fraud_cb["user_id"]] + pd.Timedelta(days=15)).clip(upper=END)
    assert (known[fraud_cb.index].to_numpy() >= earliest.to_numpy()).all()
    # The importer takes the column in its stride: every label row loads, none rejected.
    validated = read_bundle(tmp_path)
    assert validated.rejects.empty
    assert len(validated.tables["labels"]) == len(labels)


def test_coordinated_rings_share_no_device_and_act_in_sync(realistic: Bundle) -> None:
    members = _members(realistic, "coordinated_ring")
    assert abs(len(members) - round(REALISTIC.coordinated_ring_share * N_USERS)) <= 5
    assert members.groupby("ring_id").size().between(6, 20).all()
    truth = realistic["truth"]
    assert set(members["user_id"]) == set(truth[truth["typology"] == "coordinated_ring"]["user_id"])
    logins = realistic["logins"]
    users_per_device = logins.groupby("device_id")["user_id"].nunique()
    used = logins[logins["user_id"].isin(members["user_id"])]["device_id"].unique()
    assert (users_per_device.loc[used] == 1).all()  # each member on their own devices
    _check_rings_act_in_sync(realistic, "coordinated_ring", max_hours=12)
    reviews = realistic["reviews"]
    posted = reviews[reviews["user_id"].isin(members["user_id"])]
    assert (posted["rating"].isin(["4", "5"])).mean() > 0.8
    assert posted["text"].nunique() > 0.9 * len(posted)  # varied words: no copied template


def test_fragmented_rings_share_devices_only_in_pieces(realistic: Bundle) -> None:
    members = _members(realistic, "fragmented_ring")
    assert abs(len(members) - round(REALISTIC.fragmented_ring_share * N_USERS)) <= 7
    assert members.groupby("ring_id").size().between(8, 24).all()
    logins = realistic["logins"].drop_duplicates(["user_id", "device_id"])
    users_per_device = logins.groupby("device_id")["user_id"].nunique()
    mine = logins.merge(members, on="user_id")
    shared = mine[mine["device_id"].map(users_per_device) > 1]
    ring_of_device = shared.groupby("device_id")["ring_id"].nunique()
    assert (ring_of_device == 1).all()  # a shared device stays inside one ring
    assert users_per_device.loc[shared["device_id"].unique()].between(2, 4).all()
    assert (
        shared.groupby("device_id")["user_id"].nunique()
        == users_per_device.loc[ring_of_device.index]
    ).all()
    with_shared = 0
    for _, ring in members.groupby("ring_id"):
        edges = shared[shared["ring_id"] == ring["ring_id"].iloc[0]]
        with_shared += len(edges) > 0
        user_index = {u: i for i, u in enumerate(ring["user_id"])}
        device_index = {d: len(user_index) + i for i, d in enumerate(edges["device_id"].unique())}
        size = len(user_index) + len(device_index)
        graph = coo_matrix(
            (
                np.ones(len(edges)),
                (edges["user_id"].map(user_index), edges["device_id"].map(device_index)),
            ),
            shape=(size, size),
        )
        _, label = connected_components(graph, directed=False)
        pieces = len(set(label[: len(user_index)]))
        assert pieces >= 2, "device components cut the ring into pieces"
    assert with_shared >= 0.8 * members["ring_id"].nunique()
    _check_rings_act_in_sync(realistic, "fragmented_ring", max_hours=24)


def test_realistic_preset_plants_hidden_rings_as_often_as_device_farms(realistic: Bundle) -> None:
    typology = realistic["truth"].set_index("user_id")["typology"]
    rings = realistic["rings"].assign(typology=lambda r: r["user_id"].map(typology))
    per_typology = rings.groupby("typology")["ring_id"].nunique()
    farms = per_typology["device_farm"]
    for hidden in ("coordinated_ring", "fragmented_ring"):
        assert 0.4 * farms <= per_typology[hidden] <= 2.5 * farms, hidden
    off = replace(REALISTIC, coordinated_ring_share=0.0, fragmented_ring_share=0.0)
    kinds = set(fraud.ROLE_NAMES[r] for r in np.unique(simulate(off).plan.role))
    assert not kinds & {"coordinated_ring", "fragmented_ring"}


@pytest.mark.parametrize("share", [0.3, 0.7])
def test_fraud_recency_puts_the_share_in_the_last_quarter(tmp_path: Path, share: float) -> None:
    def recent_share(config: GeneratorConfig, out_dir: Path) -> tuple[float, Bundle]:
        bundle = _generate(config, out_dir)
        truth = bundle["truth"]
        opened = truth[truth["typology"].isin(OPENED)]
        assert len(opened) > 250
        return float((opened["created"] >= QUARTER).mean()), bundle

    on, bundle = recent_share(replace(REALISTIC, fraud_recency=share), tmp_path / "on")
    assert abs(on - share) <= 0.01
    truth = bundle["truth"]
    for typology in ("device_farm", "lone", "coordinated_ring", "fragmented_ring"):
        mine = truth[truth["typology"] == typology]
        assert 0 < (mine["created"] >= QUARTER).sum() < len(mine), typology  # none left out
    legit = truth[truth["typology"] == "legit"]
    assert 0.15 < (legit["created"] >= QUARTER).mean() < 0.3  # legit accounts do not move
    for table in ("orders", "reviews", "logins"):
        rows = bundle[table]
        joined = rows["user_id"].map(truth.set_index("user_id")["created"])
        assert (rows["ts"] >= joined).all() and (rows["ts"] < END).all(), table
    off, _ = recent_share(replace(REALISTIC, fraud_recency=None), tmp_path / "off")
    assert off < 0.35  # without the knob, fraud is spread over the span


def test_label_maturity_leaves_the_newest_accounts_unlabelled(
    realistic: Bundle, tmp_path: Path
) -> None:
    delay = pd.Timedelta(days=REALISTIC.label_maturity_days or 0)
    assert delay == pd.Timedelta(days=30)

    def labelled_by_age(bundle: Bundle) -> pd.DataFrame:
        truth = bundle["truth"]
        age = END - truth["created"]
        return pd.DataFrame(
            {
                "labelled": truth["user_id"].isin(bundle["labels"]["user_id"]),
                "young": age < delay,
                "mature": age > delay + pd.Timedelta(days=3),
                "legit": truth["fraud"] == "0",
            }
        )

    on = labelled_by_age(realistic)
    assert on[on["young"]]["labelled"].mean() < 0.03
    mature_legit = on[on["mature"] & on["legit"]]["labelled"].mean()
    assert abs(mature_legit - REALISTIC.label_observed) < 0.03  # every due label sampled
    off = labelled_by_age(_generate(replace(REALISTIC, label_maturity_days=None), tmp_path))
    assert off[off["young"]]["labelled"].mean() > 0.5  # without the knob: labelled at once

    labels = realistic["labels"].merge(realistic["truth"], on="user_id", suffixes=("", "_t"))
    known = pd.to_datetime(labels["observed_at"], utc=True)
    assert (known <= END).all()
    assert (known - labels["created"] >= delay / 2).all()  # fastest: a chargeback at 0.5 delay
    # Fraud opened lately is labelled far less than older fraud: the newest are least known.
    fraud = realistic["truth"][realistic["truth"]["fraud"] == "1"]
    is_known = fraud["user_id"].isin(labels["user_id"])
    recent = fraud["created"] >= QUARTER
    assert is_known[recent].mean() < 0.5 * is_known[~recent].mean()


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 0.8])
def test_camouflage_sets_the_share_of_ordinary_orders_of_fraud_accounts(share: float) -> None:
    sim = simulate(replace(REALISTIC, camouflage_share=share))
    role = sim.plan.role[sim.orders.user]
    fraudster = np.isin(role, (*fraud.FRAUD_OPENED, fraud.BUST_OUT))
    ordinary = sim.orders.kind[fraudster] == fraud.ORDINARY
    assert abs(ordinary.mean() - share) <= 0.02
    if share == 0.0:
        assert not ordinary.any()
    else:  # legit-looking: the legit status rates, no chargeback spree
        statuses = sim.orders.status[fraudster][ordinary]
        assert (statuses == fraud.CHARGEBACK).mean() < 0.02
        assert (statuses == fraud.PAID).mean() > 0.85
    # The takeover victim's own orders are not the fraudster's: left as they were.
    takeover = role == fraud.TAKEOVER
    legacy = simulate(replace(REALISTIC, camouflage_share=None))
    same = legacy.plan.role[legacy.orders.user] == fraud.TAKEOVER
    assert takeover.sum() == same.sum()


def test_cli_generate_switches_the_knobs(tmp_path: Path) -> None:
    from serving.cli import app

    runner = CliRunner()
    out = tmp_path / "realistic"
    args = ["generate", "--out", str(out), "--users", "2000", "--realistic", "--camouflage", "0.5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    typologies = set(pd.read_csv(out / "truth.csv")["typology"])
    assert {"coordinated_ring", "fragmented_ring"} <= typologies
    expected = replace(GeneratorConfig.realistic(2000, 0), camouflage_share=0.5)
    generate_marketplace(expected, tmp_path / "expected")
    for name in ("orders.csv", "labels.csv", "rings.csv"):
        assert (out / name).read_bytes() == (tmp_path / "expected" / name).read_bytes(), name
    single = tmp_path / "single"
    result = runner.invoke(
        app, ["generate", "--out", str(single), "--users", "2000", "--coordinated-rings", "0.03"]
    )
    assert result.exit_code == 0, result.output
    typologies = set(pd.read_csv(single / "truth.csv")["typology"])
    assert "coordinated_ring" in typologies and "fragmented_ring" not in typologies
    bad = runner.invoke(
        app, ["generate", "--out", str(tmp_path / "bad"), "--label-maturity-days", "400"]
    )
    assert bad.exit_code == 1 and "label_maturity_days" in bad.output
