"""Bulk initial load with Neo4j's offline importer (``neo4j-admin database import full``).

The transactional path (:mod:`graph.neo4j.load`) upserts with ``UNWIND … MERGE`` so it can run again
and again against a live server; that costs an index lookup per row. For a first load into an
empty database the offline importer is far faster: it writes the store files directly from CSV.
The price is that the server must be stopped and the database is *replaced*, so this module
refuses to run against a database that holds anything (unless told to with ``force=True``).

The graph it builds is meant to be indistinguishable from the transactional import of the same
:class:`~graph.bundle.ValidatedBundle`: the same labels, relationship types, property names and
property types (Neo4j ``DateTime`` for every timestamp, floats, integers, strings), logins
aggregated into ``USES`` exactly like :func:`graph.neo4j.load.rows_for`, null values omitted, and the
schema constraints of :func:`graph.schema.constraint_statements` created afterwards.

Only a :class:`~graph.neo4j.server.LocalNeo4j` (the project's own server) can be bulk-loaded:
the importer needs the store files on this machine and the server stopped. A caller configured
with an external server (``RISKGRAPH_NEO4J_URI``) has no ``LocalNeo4j`` to pass, and the CLI
must refuse that case before calling :func:`bulk_import`.

How nulls survive "quote every field": the importer reads a quoted empty field ``""`` as an
empty *string* for string columns (but as no value for numeric ones), while the transactional
path omits a null string property. So each node or relationship group whose optional string
column is empty for some rows (``User.country``, ``ORDERED.device_id``) is written as two
CSV sources, one header with the column and one without; numeric nulls (``feat_*``,
``Label.fraud``/``default``) are simply quoted empty fields.
"""

from __future__ import annotations

import csv
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from graph import schema
from graph.bundle import ValidatedBundle, aggregate_logins
from graph.neo4j.server import LocalNeo4j
from graph.neo4j.store import GraphStore

# The one user database of Neo4j Community Edition.
DATABASE = "neo4j"

# Feature column names end up in a CSV header as ``name:double``; these characters would be
# read as header syntax (type separator, field separator, quote) or break the line.
_BAD_HEADER_NAME = re.compile(r'[:,"\r\n]')


class BulkImportError(RuntimeError):
    """The bulk import was refused or failed; the message says why and what state the server is in."""


@dataclass
class BulkReport:
    """What a bulk import wrote (per label / relationship type) and how long each stage took."""

    nodes: dict[str, int]
    relationships: dict[str, int]
    seconds: dict[str, float]


@dataclass
class ImportSource:
    """One ``--nodes``/``--relationships`` group: a header and the rows under it.

    ``columns`` maps each header field (``name:type``) to the frame column holding its values;
    datetimes are still epoch milliseconds here and become ISO strings when written.
    """

    kind: str  # "nodes" or "relationships"
    name: str  # label or relationship type
    columns: dict[str, str]
    frame: pd.DataFrame
    datetimes: tuple[str, ...] = field(default=())

    @property
    def rows(self) -> int:
        return len(self.frame)


def _iso_utc(millis: pd.Series) -> np.ndarray:
    """Epoch milliseconds → ``2026-01-05T10:00:00.000Z``, vectorised in numpy.

    The ``Z`` makes the importer store a UTC ``DateTime``, which is what the transactional
    path's ``datetime({epochMillis: …})`` produces.
    """
    values = millis.to_numpy(dtype="int64").astype("datetime64[ms]")
    return np.datetime_as_string(values, unit="ms", timezone="UTC")


def _split_optional(
    frame: pd.DataFrame, column: str
) -> tuple[pd.DataFrame, pd.DataFrame]:  # (rows with a value, rows without)
    """Rows where the optional string ``column`` is set, and rows where it is empty.

    See the module docstring: an empty optional string must be *absent*, and with every field
    quoted that needs a header without the column.
    """
    has = frame[column].fillna("").astype(str) != ""
    return frame[has], frame[~has]


def _with_review_aggregates(products: pd.DataFrame, reviews: pd.DataFrame | None) -> pd.DataFrame:
    """``products`` with each product's review count and rating sum over the clean reviews
    (0 and 0 without any), the values :data:`graph.neo4j.load.RECOUNT_TOUCHED` keeps."""
    if reviews is None or reviews.empty:
        per = pd.DataFrame({"n": [], "s": []}, dtype=np.int64)
    else:
        per = reviews.groupby("product_id")["rating"].agg(n="size", s="sum")
    ids = products["product_id"]
    return products.assign(**{
        schema.REVIEW_COUNT: ids.map(per["n"]).fillna(0).astype(np.int64).to_numpy(),
        schema.RATING_SUM: ids.map(per["s"]).fillna(0).astype(np.int64).to_numpy(),
    })  # fmt: skip


def plan_sources(bundle: ValidatedBundle) -> list[ImportSource]:
    """Shape the clean tables into importer sources, mirroring every write in graph.neo4j.load.

    Pure (no I/O) so the mapping can be read next to :mod:`graph.neo4j.load` and tested on its own.
    """
    t = bundle.tables
    out: list[ImportSource] = []

    def add(
        kind: str,
        name: str,
        frame: pd.DataFrame,
        columns: dict[str, str],
        datetimes: tuple[str, ...] = (),
    ) -> None:
        if len(frame):
            out.append(ImportSource(kind, name, columns, frame.reset_index(drop=True), datetimes))

    if "merchants" in t:
        add(
            "nodes",
            schema.MERCHANT,
            t["merchants"],
            {
                f"merchant_id:ID({schema.MERCHANT})": "merchant_id",
                "created_at:datetime": "created_at",
                "category:string": "category",
            },
            ("created_at",),
        )
    if "products" in t:
        products = t["products"]
        add(
            "nodes",
            schema.PRODUCT,
            _with_review_aggregates(products, t.get("reviews")),
            {
                f"product_id:ID({schema.PRODUCT})": "product_id",
                "category:string": "category",
                "price:double": "price",
                f"{schema.REVIEW_COUNT}:long": schema.REVIEW_COUNT,
                f"{schema.RATING_SUM}:long": schema.RATING_SUM,
            },
        )
        add(
            "relationships",
            schema.SOLD_BY,
            products,
            {
                f":START_ID({schema.PRODUCT})": "product_id",
                f":END_ID({schema.MERCHANT})": "merchant_id",
            },
        )
    if "users" in t:
        users = t["users"]
        feats = [c for c in users.columns if c.startswith(schema.FEATURE_PREFIX)]
        bad = [c for c in feats if _BAD_HEADER_NAME.search(c) or c != c.strip()]
        if bad:
            raise BulkImportError(
                f"feature column name(s) {bad} cannot be written as importer headers "
                "(they contain ':', ',', a quote, a line break or edge whitespace); "
                "rename them or use the transactional import"
            )
        base = {f"user_id:ID({schema.USER})": "user_id", "created_at:datetime": "created_at"}
        feat_cols = {f"{c}:double": c for c in feats}
        with_country, without_country = _split_optional(users, "country")
        add(
            "nodes",
            schema.USER,
            with_country,
            {**base, "country:string": "country", **feat_cols},
            ("created_at",),
        )
        add("nodes", schema.USER, without_country, {**base, **feat_cols}, ("created_at",))
    if "devices" in t:
        add(
            "nodes",
            schema.DEVICE,
            t["devices"],
            {
                f"device_id:ID({schema.DEVICE})": "device_id",
                "kind:string": "kind",
                "first_seen:datetime": "first_seen",
            },
            ("first_seen",),
        )
    if "logins" in t:
        # The same aggregation as the transactional import: one USES edge per (user, device).
        agg = aggregate_logins(t["logins"])
        add(
            "relationships",
            schema.USES,
            agg,
            {
                f":START_ID({schema.USER})": "user_id",
                f":END_ID({schema.DEVICE})": "device_id",
                "first_seen:datetime": "first_ts",
                "last_seen:datetime": "last_ts",
                "logins:long": "logins",
            },
            ("first_ts", "last_ts"),
        )
    if "orders" in t:
        base = {
            f":START_ID({schema.USER})": "user_id",
            f":END_ID({schema.PRODUCT})": "product_id",
            "order_id:string": "order_id",
            "amount:double": "amount",
            "ts:datetime": "ts",
            "status:string": "status",
        }
        with_device, without_device = _split_optional(t["orders"], "device_id")
        add(
            "relationships",
            schema.ORDERED,
            with_device,
            {**base, "device_id:string": "device_id"},
            ("ts",),
        )
        add("relationships", schema.ORDERED, without_device, base, ("ts",))
    if "reviews" in t:
        add(
            "relationships",
            schema.REVIEWED,
            t["reviews"],
            {
                f":START_ID({schema.USER})": "user_id",
                f":END_ID({schema.PRODUCT})": "product_id",
                "review_id:string": "review_id",
                "rating:long": "rating",
                "text:string": "text",
                "ts:datetime": "ts",
            },
            ("ts",),
        )
    if "labels" in t:
        # fraud/default are floats with NaN for "unknown"; a quoted empty double is no value.
        # An optional observed_at (a datetime, absent when not given) splits the rows in two
        # sources, like the optional strings.
        labels = t["labels"]
        observed = (
            labels["observed_at"].notna()
            if "observed_at" in labels
            else pd.Series(False, index=labels.index)
        )
        label_columns = {
            f"user_id:ID({schema.LABEL})": "user_id",
            "fraud:double": "fraud",
            "default:double": "default",
        }
        add(
            "nodes",
            schema.LABEL,
            labels[observed].assign(observed_at=labels["observed_at"][observed].astype("int64")),
            {**label_columns, "observed_at:datetime": "observed_at"},
            ("observed_at",),
        )
        add("nodes", schema.LABEL, labels[~observed], label_columns)
    if "rings" in t:
        # No :ID column: nothing points at ground-truth nodes, and ids would not be unique.
        add(
            "nodes",
            schema.TRUTH_RING,
            t["rings"],
            {"ring_id:string": "ring_id", "user_id:string": "user_id"},
        )
    return out


# Which node id space each relationship endpoint column refers to.
_ENDPOINTS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    schema.SOLD_BY: (("product_id", schema.PRODUCT), ("merchant_id", schema.MERCHANT)),
    schema.USES: (("user_id", schema.USER), ("device_id", schema.DEVICE)),
    schema.ORDERED: (("user_id", schema.USER), ("product_id", schema.PRODUCT)),
    schema.REVIEWED: (("user_id", schema.USER), ("product_id", schema.PRODUCT)),
}


def check_endpoints(sources: list[ImportSource]) -> None:
    """Every relationship must point at a node of this bundle.

    The importer builds a new database from these files alone, so a bundle validated against
    ids already in an older database (``existing_ids``) cannot be bulk-loaded; the importer in
    its default non-strict mode might not even notice every dangling id. Checked here, in
    pandas, with an error that names the ids.
    """
    ids: dict[str, list[pd.Series]] = {}
    for src in sources:
        if src.kind == "nodes" and src.name in schema.ID_KEY:
            ids.setdefault(src.name, []).append(src.frame[schema.ID_KEY[src.name]])
    known = {label: pd.Index(pd.concat(parts)) for label, parts in ids.items()}
    for src in sources:
        if src.kind != "relationships":
            continue
        for column, label in _ENDPOINTS[src.name]:
            values = src.frame[column]
            missing = values[~values.isin(known.get(label, pd.Index([])))]
            if len(missing):
                raise BulkImportError(
                    f"{len(missing)} {src.name} relationship(s) point at {label} ids that are not "
                    f"in this bundle (column {column}; ids are personal data, so they are not "
                    "printed: anti-join the two files to list them); the bulk importer "
                    "builds a new database from the bundle alone, so validate it without "
                    "existing_ids or use the transactional import"
                )


def write_sources(sources: list[ImportSource], work_dir: Path) -> list[str]:
    """Write a header file and a fully quoted data file per source; return importer arguments.

    File names are plain (``nodes-00-User.data.csv``) because the importer also reads file
    arguments as regular expressions and splits the list on commas.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    args: list[str] = []
    for i, src in enumerate(sources):
        stem = work_dir / f"{src.kind}-{i:02d}-{src.name}"
        header, data = Path(f"{stem}.header.csv"), Path(f"{stem}.data.csv")
        header.write_text(",".join(src.columns) + "\n", encoding="utf-8")
        frame = src.frame[list(src.columns.values())].copy()
        frame.columns = list(src.columns)
        for header_name, column in src.columns.items():
            if column in src.datetimes:
                frame[header_name] = _iso_utc(src.frame[column])
        frame.to_csv(
            data,
            index=False,
            header=False,
            quoting=csv.QUOTE_ALL,
            lineterminator="\n",
            encoding="utf-8",
        )
        args.append(f"--{src.kind}={src.name}={header},{data}")
    return args


def read_buffer_bytes(sources: list[ImportSource]) -> int:
    """The importer's ``--read-buffer-size``, which its documentation says must hold the
    biggest single value: twice the longest value's worst-case UTF-8 length, at least the
    default 4 MiB. (Neo4j 5.26 was seen loading a 5 MB value with the default too; the option
    keeps a raised ``Settings.max_field_bytes`` within what the importer promises to read.)
    """
    longest = 0
    for src in sources:
        for column in src.columns.values():
            values = src.frame[column]
            if len(values) and not pd.api.types.is_numeric_dtype(values):
                longest = max(longest, int(values.astype(str).str.len().max()))
    return max(4 << 20, 2 * 4 * longest + (1 << 16))


def _counts(sources: list[ImportSource]) -> tuple[dict[str, int], dict[str, int]]:
    nodes: dict[str, int] = {}
    rels: dict[str, int] = {}
    for src in sources:
        target = nodes if src.kind == "nodes" else rels
        target[src.name] = target.get(src.name, 0) + src.rows
    return nodes, rels


def _tail(text: str, n: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def bulk_import(
    server: LocalNeo4j,
    bundle: ValidatedBundle,
    work_dir: Path,
    *,
    threads: int | None = None,
    force: bool = False,
) -> BulkReport:
    """Load a validated bundle into an EMPTY local database with neo4j-admin database import full.

    Stops the server, writes header+data CSV files for the importer (nodes per label,
    relationships per type) from the *clean* tables of the ValidatedBundle (rejects were already
    split off by the same validation the transactional path uses), runs the importer with
    --overwrite-destination, restarts the server, then creates the schema constraints/indexes
    (GraphStore.ensure_schema) — and returns counts and timings.

    Why the guards: the importer *replaces* the ``neo4j`` database, so a database holding any
    node is refused before the server is touched, unless ``force=True`` (which discards it).
    The server must be this project's local one (a :class:`LocalNeo4j`); refusing an external
    ``RISKGRAPH_NEO4J_URI`` server is the CLI's job, since it has no ``LocalNeo4j`` to pass.

    Args:
        server: the local server; started first if it is down (to check it is empty).
        bundle: a validated bundle. Validate it *without* ``existing_ids``: relationships must
            point at nodes of the bundle itself.
        work_dir: where the CSV files and the importer's report (``import.report``) are
            written; they are left there for inspection, and the caller owns the folder.
        threads: the importer's ``--threads`` (default: the JVM's processor count).
        force: overwrite a non-empty database.

    Raises:
        BulkImportError: the database is not empty, the bundle cannot be bulk-loaded, or the
            importer failed (the message carries its output; the server is restarted).
    """
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    work_dir = Path(work_dir).expanduser().resolve()
    if "," in str(work_dir):
        raise BulkImportError(f"{work_dir}: the importer splits file lists on ',', pick another")

    def lap(stage: str, since: float) -> float:
        now = time.perf_counter()
        seconds[stage] = round(now - since, 3)
        return now

    # Plan and check first: a bundle that cannot be imported must not cost a server restart.
    sources = plan_sources(bundle)
    check_endpoints(sources)
    nodes, rels = _counts(sources)
    mark = lap("plan", started)

    server.start()
    with GraphStore(server.uri, "neo4j", server.password(), DATABASE) as store:
        present = int(store.read("MATCH (n) RETURN count(n) AS n")[0]["n"])
    if present and not force:
        raise BulkImportError(
            f"the database at {server.uri} is not empty ({present} nodes); the bulk importer "
            "replaces it. Empty it first (riskgraph reset --yes), pass --force (force=True) to discard "
            "it, or use the transactional import to add to it"
        )
    mark = lap("check", mark)

    args = write_sources(sources, work_dir)
    mark = lap("write_csv", mark)

    server.stop()
    mark = lap("stop", mark)

    report_file = work_dir / "import.report"
    options = [
        "--id-type=string",
        "--multiline-fields=true",
        "--overwrite-destination=true",
        "--bad-tolerance=0",
        f"--report-file={report_file}",
        f"--read-buffer-size={read_buffer_bytes(sources)}",
    ]
    if threads is not None:
        options.append(f"--threads={threads}")
    # The database name goes first: --nodes/--relationships take a variable number of values
    # and would swallow a trailing positional argument as one more file.
    proc = server.admin("database", "import", "full", DATABASE, *options, *args)
    mark = lap("import", mark)
    if proc.returncode != 0:
        restart = ""
        try:
            server.start()
        except Exception as exc:  # the import error matters more; say the server is down too
            restart = f"\nThe server could not be restarted either: {exc}"
        raise BulkImportError(
            f"neo4j-admin database import full failed (exit {proc.returncode}); "
            f"files and {report_file.name} are in {work_dir}:\n"
            f"{_tail(proc.stdout)}\n{_tail(proc.stderr)}{restart}"
        )

    server.start()
    mark = lap("start", mark)
    with GraphStore(server.uri, "neo4j", server.password(), DATABASE) as store:
        store.ensure_schema()
        mark = lap("schema", mark)
        found = store.counts()
    wrong = {
        name: (want, found.get(name, 0))
        for name, want in {**nodes, **rels}.items()
        if found.get(name, 0) != want
    }
    if wrong:
        raise BulkImportError(
            f"after the import the database holds other counts than written "
            f"(name: (written, found)): {wrong}; see {report_file}"
        )
    seconds["total"] = round(time.perf_counter() - started, 3)
    return BulkReport(nodes=nodes, relationships=rels, seconds=seconds)
