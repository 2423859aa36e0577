"""Every alert the chart can fire and every incident Courier can open has a runbook entry
in docs/operations.md: what it means, then the first three things to check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from courier.common.db.models_incidents import PARTNER_KINDS, PLATFORM_KINDS

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
RULES = ROOT / "deploy" / "k8s" / "courier" / "files" / "alerts.yaml"


def _alerts() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    return [r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r]


def _entries(section: str) -> dict[str, str]:
    """The `####` entries of one `###` section of the runbooks: name -> body."""
    text = OPERATIONS.read_text()
    runbooks = text.split("\n## Runbooks\n", 1)[1].split("\n## ", 1)[0]
    body = runbooks.split(f"\n### {section}\n", 1)[1].split("\n### ", 1)[0]
    parts = re.split(r"^#### (.+)$", body, flags=re.MULTILINE)[1:]
    names, bodies = parts[::2], parts[1::2]
    return {name.strip().strip("`"): entry for name, entry in zip(names, bodies, strict=True)}


def _first_three_checks(entry: str) -> bool:
    """Some words on what it means, then a numbered list of at least three checks."""
    meaning, _, checks = entry.strip().partition("\n1. ")
    return bool(meaning.strip()) and "\n2. " in checks and "\n3. " in checks


@pytest.mark.parametrize("alert", _alerts())
def test_every_alert_of_the_chart_has_a_runbook_entry(alert: str) -> None:
    entries = _entries("Alerts")
    assert alert in entries, f"docs/operations.md, Runbooks, Alerts: no `#### {alert}`"
    assert _first_three_checks(entries[alert]), entries[alert]


@pytest.mark.parametrize("kind", sorted(PLATFORM_KINDS | PARTNER_KINDS))
def test_every_incident_kind_has_a_runbook_entry(kind: str) -> None:
    entries = _entries("Incidents")
    assert kind in entries, f"docs/operations.md, Runbooks, Incidents: no `#### `{kind}``"
    assert _first_three_checks(entries[kind]), entries[kind]


def test_the_runbooks_name_no_alert_or_incident_that_does_not_exist() -> None:
    assert set(_entries("Alerts")) <= set(_alerts())
    assert set(_entries("Incidents")) <= PLATFORM_KINDS | PARTNER_KINDS


def test_the_runbooks_cover_running_courier() -> None:
    text = OPERATIONS.read_text().split("\n## Runbooks\n", 1)[1]
    for heading in (
        "Install",
        "Upgrade",
        "Scaling each service",
        "The three-node JetStream layout",
        "Rotating secrets",
        "Rotating the gateway's host keys",
        "Restore from backup",
    ):
        assert f"\n### {heading}\n" in text, heading
