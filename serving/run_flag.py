"""Flag reads of a graph whose newest scoring run did not finish (issue 15).

``riskgraph score`` marks its run ``complete`` only when every user carries it; until then
(a kill, a crash, shards still writing) some users hold the new run's scores and the rest an
older run's. ``export`` refuses such a graph and ``report`` shows the last complete run; the
commands that print live scores (``cypher``, ``query``, ``ring``) print their rows but say so:
a warning on stderr naming the run, its model version and the users on each side, and in
``--json`` output an ``_unfinished_run`` field. A complete run adds nothing.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from graph.neo4j.runs import UnfinishedRun, unfinished_run

__all__ = ["FIELD", "flagged", "unfinished_run", "warn"]

FIELD = "_unfinished_run"  # the --json field; leading underscore: no query column is named so


def warn(flag: UnfinishedRun | None, err: Console | None = None) -> None:
    """Print the warning on stderr (nothing when the newest run is complete)."""
    if flag is not None:
        (err or Console(stderr=True, soft_wrap=True)).print(
            f"[bold yellow]warning:[/] {escape(flag.message())}"
        )


def flagged(row: dict[str, Any], flag: UnfinishedRun | None) -> dict[str, Any]:
    """``row`` with the ``_unfinished_run`` field added when the run is unfinished."""
    return row if flag is None else {**row, FIELD: flag.as_json()}
