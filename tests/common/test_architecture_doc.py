"""`docs/architecture.md` agrees with the code: its subject table, the AsyncAPI document and
the durable consumers the services register."""

from __future__ import annotations

import ast
from pathlib import Path

from courier.common.asyncapi import document
from courier.common.events import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


def _table() -> dict[str, dict[str, str]]:
    """The rows of the "Subjects" table, by subject."""
    text = DOC.read_text()
    section = text.split("## Subjects", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    out = {}
    for line in rows:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        subject, producer, consumer, durable, key = cells[:5]
        out[subject.strip("`")] = {
            "producer": producer,
            "consumer": consumer,
            "durables": {d.strip().strip("`") for d in durable.split(",") if d.strip() != "—"},
            "key": key,
        }
    return out


def _registered() -> dict[str, set[str]]:
    """Durable consumers, by subject, as `bus.consume(Model, "durable", …)` calls name them."""
    by_model = {cls.__name__: subject for subject, cls in EVENT_TYPES.items()}
    out: dict[str, set[str]] = {}
    for path in (ROOT / "services").glob("*/app.py"):
        tree = ast.parse(path.read_text())
        # Durable names given as module constants (`ROUTER = "notifier-notices"`).
        names = {
            t.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "consume"
                and len(node.args) >= 2
                and isinstance(node.args[0], ast.Name)
            ):
                arg = node.args[1]
                durable = arg.value if isinstance(arg, ast.Constant) else names[arg.id]  # type: ignore[attr-defined]
                out.setdefault(by_model[node.args[0].id], set()).add(durable)
    return out


def test_every_subject_in_the_asyncapi_document_is_in_the_table_and_no_other() -> None:
    channels = {c["address"] for c in document()["channels"].values()}
    assert set(_table()) == channels == set(EVENT_TYPES)


def test_the_table_names_the_durable_consumers_the_services_register() -> None:
    table = _table()
    assert {s: row["durables"] for s, row in table.items() if row["durables"]} == _registered()


def test_every_subject_has_a_producer_and_an_idempotency_key() -> None:
    for subject, row in _table().items():
        assert row["producer"] and row["key"], subject
