"""Every Cypher string in the package names only labels and relationship types that
``graph.schema`` defines: a misspelt label matches nothing in Neo4j and fails silently, so
the scan catches it before any server does."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from graph import schema

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("graph", "encoders", "training", "serving")
CYPHER = re.compile(r"\b(MATCH|MERGE|CREATE)\b")
# `(n:User`, `(:Ring {`, `(n:A:B)`: the labels of a node pattern.
NODE = re.compile(r"\(\s*\w*\s*((?::\s*\w+)+)")
# `[:MEMBER_OF]`, `[r:ORDERED {`, `[old:MEMBER_OF|CENTRES_ON]`: a relationship pattern's types.
REL = re.compile(r"\[\s*\w*\s*:\s*(\w+(?:\s*\|\s*:?\s*\w+)*)")


def _rendered(node: ast.expr) -> str | None:
    """The text of a string constant or f-string; ``{schema.NAME}`` is replaced by the
    schema's value, any other placeholder by nothing (so it cannot pose as a name)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if not isinstance(node, ast.JoinedStr):
        return None
    parts: list[str] = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append(str(value.value))
        elif isinstance(value, ast.FormattedValue):
            inner = value.value
            if (
                isinstance(inner, ast.Attribute)
                and isinstance(inner.value, ast.Name)
                and inner.value.id == "schema"
            ):
                parts.append(str(getattr(schema, inner.attr)))
    return "".join(parts)


def cypher_strings(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string in ``source`` that reads as Cypher (docstrings aside)."""
    tree = ast.parse(source)
    parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    parts |= {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}  # docstrings
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant | ast.JoinedStr) and id(node) not in parts:
            text = _rendered(node)
            if text is not None and CYPHER.search(text):
                out.append((node.lineno, text))
    return out


def unknown_names(text: str) -> set[str]:
    """Labels and relationship types in ``text`` that the schema does not define."""
    labels = {
        name.strip() for match in NODE.findall(text) for name in match.split(":") if name.strip()
    }
    rels = {
        name.strip(" :") for match in REL.findall(text) for name in match.split("|") if name.strip()
    }
    return (labels - set(schema.NODE_LABELS)) | (rels - set(schema.RELATIONSHIP_TYPES))


def scan(path: Path) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line}: {sorted(bad)}"
        for line, text in cypher_strings(path.read_text())
        if (bad := unknown_names(text))
    ]


def test_every_cypher_string_names_only_schema_labels_and_relationships() -> None:
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    checked = sum(len(cypher_strings(p.read_text())) for p in files)
    assert checked > 40  # the scan found the queries (load, reader, writeback, rings, serving)
    problems = [problem for path in files for problem in scan(path)]
    assert problems == []


def test_scan_catches_a_planted_misspelling(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        "from graph import schema\n"
        'GOOD = f"MATCH (u:{schema.USER})-[:{schema.USES}]->(d:Device) RETURN d"\n'
        'BAD = """MATCH (u:Users {user_id: $id})-[r:ORDERED|BOUGHT]->(p:Product)\n'
        'RETURN p"""\n'
    )
    names = [unknown_names(text) for _, text in cypher_strings(planted.read_text())]
    assert names == [set(), {"Users", "BOUGHT"}]


def test_schema_names_are_distinct_and_edge_types_follow_relations() -> None:
    assert len(set(schema.NODE_LABELS)) == len(schema.NODE_LABELS)
    assert len(set(schema.RELATIONSHIP_TYPES)) == len(schema.RELATIONSHIP_TYPES)
    assert {r.rel for r in schema.RELATIONS} <= set(schema.RELATIONSHIP_TYPES)
    assert schema.ORDERED_EDGE == ("user", "ordered", "product")
    assert schema.USES_EDGE == ("user", "uses", "device")
