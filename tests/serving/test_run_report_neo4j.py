"""A whole run through the command line on a real Neo4j and the real BERT model: import,
train, score (killed half-way, then rerun), rings, report, export; then the report rendered
in headless Chromium, and every captured log line searched for the bundle's ids and texts."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import serving.pipeline as pipeline
from graph.neo4j.store import GraphStore
from serving.cli import app
from serving.report.page import SECTIONS
from serving.settings import Settings

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]
CHROMIUM = Path("/usr/bin/chromium")
FIGURES = ("fig-roc-fraud", "fig-pr-fraud", "fig-calibration-fraud", "fig-score-by-outcome",
           "fig-reasons", "fig-drift-score", "fig-fairness-country", "fig-fairness-age_group")  # fmt: skip


class Killed(RuntimeError):
    """Stands for the process dying between two committed batches."""


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.ring_svgs = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        if tag == "svg" and found.get("class") == "ring":
            self.ring_svgs += 1


@pytest.fixture(scope="module")
def run(  # type: ignore[no-untyped-def]
    neo4j_settings: Settings, small_bundle: Path, tmp_path_factory: pytest.TempPathFactory
):
    """The run, its outputs and everything it printed or logged."""
    from serving.connect import open_store

    work = tmp_path_factory.mktemp("run")
    env = {"RISKGRAPH_STATE_DIR": str(neo4j_settings.state_dir),
           "RISKGRAPH_NEO4J_PORT": str(neo4j_settings.neo4j_port),
           "RISKGRAPH_ARTIFACT_DIR": str(work / "artifacts"),
           "RISKGRAPH_EXPORT_DIR": str(work / "exports"), "RISKGRAPH_EPOCHS": "30",
           "RISKGRAPH_PATIENCE": "10", "RISKGRAPH_WRITE_BATCH_SIZE": "200",
           "RISKGRAPH_PSEUDONYM_KEY": "test-key-0123456789abcdef"}  # fmt: skip
    with open_store(neo4j_settings, start=False) as store:
        store.delete_all()
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    root = logging.getLogger()
    old_level = root.level
    records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Capture(logging.DEBUG)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # every library's log lines, as a verbose deployment has them
    runner = CliRunner()
    out: dict[str, Any] = {"work": work, "outputs": []}

    def cli(*args: str) -> Any:
        result = runner.invoke(app, list(args))
        out["outputs"].append(result.output)
        return result

    try:
        assert cli("import", str(small_bundle), "--report-dir", str(work / "imp")).exit_code == 0
        assert cli("train", "--split", "time", "--compare").exit_code == 0
        assert cli("score").exit_code == 0
        real = pipeline.write_user_scores

        def dies_after_one_batch(*a: Any, **kw: Any) -> int:
            def progress(_: int) -> None:
                raise Killed

            return real(*a[:7], progress=progress) if len(a) >= 7 else real(*a, **kw)

        mp.setattr(pipeline, "write_user_scores", dies_after_one_batch)
        out["killed"] = cli("score")
        out["refused_export"] = cli("export", "--out", str(work / "refused"))
        out["killed_report"] = cli("report", "--out", str(work / "killed.html"))
        mp.setattr(pipeline, "write_user_scores", real)
        out["rerun"] = cli("score")
        assert out["rerun"].exit_code == 0, out["rerun"].output
        assert cli("rings").exit_code == 0
        out["report"] = cli("report", "--out", str(work / "report.html"))
        assert out["report"].exit_code == 0, out["report"].output
        assert cli("export", "--out", str(work / "export")).exit_code == 0
        assert cli("export", "--out", str(work / "pseudo"), "--pseudonymise",
                   "--tables", "users,members,merchants").exit_code == 0  # fmt: skip
        cli("ring", "ring-nonexistent")  # an error message path
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        mp.undo()
    out["logs"] = records
    yield out


def test_killed_score_run_is_refused_then_completed(run, store_scored: GraphStore) -> None:  # type: ignore[no-untyped-def]
    assert run["killed"].exit_code != 0
    assert run["refused_export"].exit_code == 2 and "did not finish" in run["refused_export"].output
    assert "resuming" in run["rerun"].output
    runs = store_scored.read("MATCH (r:ScoreRun) RETURN r.run_id AS id, r.status AS status "
                             "ORDER BY r.at")  # fmt: skip
    assert [r["status"] for r in runs] == ["complete", "complete"]
    users = store_scored.read(
        "MATCH (u:User) RETURN count(u) AS n, count(DISTINCT u.score_run) AS runs, "
        "collect(DISTINCT u.score_run) AS on, collect(DISTINCT u.previous_run) AS previous, "
        "sum(CASE WHEN u.previous_score = u.credit_score THEN 1 ELSE 0 END) AS same"
    )[0]
    # every user on the rerun run, each shifted once: previous = the first run's score
    assert users["on"] == [runs[1]["id"]] and users["previous"] == [runs[0]["id"]]
    assert users["same"] == users["n"] == 800  # same model, same graph: same scores


def test_report_of_a_killed_run_names_it_and_the_users_on_each_side(run) -> None:  # type: ignore[no-untyped-def]
    assert run["killed_report"].exit_code == 0, run["killed_report"].output
    parser = _Ids()
    html = (run["work"] / "killed.html").read_text()
    parser.feed(html)
    assert "run-warning" in parser.ids and set(SECTIONS) <= parser.ids
    banner = re.search(r'<p class="warn" id="run-warning">(.*?)</p>', html)
    assert banner is not None
    # one batch of 200 written before the kill; the rest still on the first run
    assert "did not finish: 200 users carry its scores, 600 an older run" in banner.group(1)
    assert "This report shows the last complete run" in banner.group(1)
    assert "did not finish" in run["killed_report"].stderr  # and on the terminal


@pytest.fixture
def store_scored(neo4j_settings: Settings, run):  # type: ignore[no-untyped-def]
    from serving.connect import open_store

    with open_store(neo4j_settings, start=False) as st:
        yield st


def test_report_has_every_section_and_figure(run) -> None:  # type: ignore[no-untyped-def]
    page = run["work"] / "report.html"
    html = page.read_text()
    parser = _Ids()
    parser.feed(html)
    assert set(SECTIONS) <= parser.ids
    assert set(FIGURES) <= parser.ids, set(FIGURES) - parser.ids
    assert parser.ring_svgs >= 1
    assert page.stat().st_size < 5_000_000
    # nothing to fetch: no script, stylesheet link, image or font from elsewhere
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)|<script|<link|url\((?!#)", html)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_report_renders_in_headless_chromium(run) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    shot = run["work"] / "report.png"
    subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={shot}", "--window-size=1200,3000",
         f"file://{run['work'] / 'report.html'}"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (3000, 1200)
    assert (pixels < 200).mean() > 0.02 and pixels.std() > 20  # text and figures, not blank


def test_export_manifest_matches_its_files(run) -> None:  # type: ignore[no-untyped-def]
    from serving.export.write import verify_export

    manifest = json.loads((run["work"] / "export" / "manifest.json").read_text())
    assert manifest["run_status"] == "complete" and manifest["tables"]["users"]["rows"] == 800
    assert verify_export(run["work"] / "export") == []
    pseudo = json.loads((run["work"] / "pseudo" / "manifest.json").read_text())
    assert pseudo["pseudonymised"]
    users = pd.read_parquet(run["work"] / "pseudo" / "users-00000.parquet")
    assert not users["user_id"].str.match(r"^U\d+$").any()


def test_no_ids_or_texts_in_the_logs(run, small_bundle: Path) -> None:  # type: ignore[no-untyped-def]
    """Nothing a run prints or logs names a user, device or merchant, or quotes a review."""
    text = "\n".join(run["outputs"] + run["logs"])
    assert len(run["logs"]) > 0  # the capture works (libraries do log at DEBUG)
    ids = set()
    for table, col in (("users", "user_id"), ("devices", "device_id"),
                       ("merchants", "merchant_id")):  # fmt: skip
        ids |= set(pd.read_csv(small_bundle / f"{table}.csv", dtype=str)[col])
    tokens = set(re.findall(r"[A-Za-z0-9_\-]+", text))
    assert not ids & tokens, sorted(ids & tokens)[:10]
    reviews = pd.read_csv(small_bundle / "reviews.csv", dtype=str)["text"].dropna()
    long = [t for t in reviews if len(t) >= 20]
    assert long and not [t for t in long if t in text][:3]
