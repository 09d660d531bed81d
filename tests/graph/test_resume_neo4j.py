"""A transactional import killed with SIGKILL half-way completes when rerun, with no duplicates.

The import runs as its own process (``python -m serving.cli import``, exactly what a user runs)
against the test server; the test waits until part of the orders are in, kills the process with
``SIGKILL`` (no cleanup handler runs, a transaction may be open), reruns the import to
completion and compares the whole graph with an uninterrupted import of the same bundle: node
and relationship counts, every property and its type, schema, and multiset equality of the
relationships (a duplicated edge shows up as an extra entry).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from graph.bundle import read_bundle
from graph.neo4j.load import import_bundle
from graph.neo4j.store import GraphStore
from serving.connect import connection
from serving.settings import Settings
from tests.graph.test_bulk_neo4j import dump

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ORDERED = "MATCH ()-[r:ORDERED]->() RETURN count(r) AS n"
# Small transactions so that the kill lands between (or inside) many commits.
BATCH = 50


def _import_process(settings: Settings, bundle: Path, report: Path) -> subprocess.Popen[bytes]:
    """``riskgraph import`` in a separate process, pointed at the test server."""
    conn = connection(settings)
    env = {
        **os.environ,
        "RISKGRAPH_NEO4J_URI": conn.uri,
        "RISKGRAPH_NEO4J_USER": conn.user,
        "RISKGRAPH_NEO4J_PASSWORD": conn.password,
        "RISKGRAPH_NEO4J_DATABASE": conn.database,
        "RISKGRAPH_WRITE_BATCH_SIZE": str(BATCH),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    cmd = [sys.executable, "-m", "serving.cli", "import", str(bundle), "--report-dir", str(report)]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _count(store: GraphStore, query: Any) -> int:
    return int(store.read(query)[0]["n"])


def test_import_killed_with_sigkill_completes_on_rerun(
    store: GraphStore, neo4j_settings: Settings, small_bundle: Path, tmp_path: Path
) -> None:
    bundle = read_bundle(small_bundle)
    import_bundle(store, bundle)
    expected = dump(store)
    total_orders = expected["counts"]["ORDERED"]
    assert total_orders > 20 * BATCH  # enough transactions to land a kill in between
    store.delete_all()

    proc = _import_process(neo4j_settings, small_bundle, tmp_path / "killed")
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if _count(store, ORDERED) >= 2 * BATCH:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the import was not killed mid-way:\n{output}"

    partial = store.counts()
    assert 0 < partial["ORDERED"] < total_orders, partial
    assert partial["REVIEWED"] == 0  # reviews are written after orders

    rerun = _import_process(neo4j_settings, small_bundle, tmp_path / "rerun")
    output = rerun.communicate(timeout=600)[0].decode(errors="replace")
    assert rerun.returncode == 0, output

    got = dump(store)
    for key in expected:
        assert got[key] == expected[key], key
