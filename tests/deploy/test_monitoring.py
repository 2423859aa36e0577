"""The shipped alert rules and dashboard watch metrics the services really export."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

CHART = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "courier"
METRIC = re.compile(r"\b(courier_[a-z_]+)")
HISTOGRAM_PARTS = ("_bucket", "_count", "_sum")
SERVICES = (
    "gateway",
    "poller",
    "importer",
    "exporter",
    "monitor",
    "notifier",
    "backup",
    "console",
)


def exported_metrics() -> set[str]:
    """Every metric family registered once all of Courier's modules are imported."""
    for service in SERVICES:
        importlib.import_module(f"courier.{service}.app")
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
    return names


def used_in(text: str) -> set[str]:
    out = set()
    for name in METRIC.findall(text):
        for suffix in HISTOGRAM_PARTS:
            name = name.removesuffix(suffix)
        out.add(name)
    return out


def test_alert_rules_are_complete_and_name_real_metrics() -> None:
    text = (CHART / "files" / "alerts.yaml").read_text()
    rules = [r for g in yaml.safe_load(text)["groups"] for r in g["rules"]]
    assert len(rules) >= 8
    for rule in rules:
        assert rule["alert"].startswith("Courier") and rule["expr"]
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"]
    assert used_in(text) - exported_metrics() == set()


def test_dashboard_panels_query_real_metrics() -> None:
    text = (CHART / "files" / "dashboard.json").read_text()
    dashboard = json.loads(text)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 12
    used = used_in("\n".join(exprs))
    assert used - exported_metrics() == set()
    # Each part of the product has a panel: gateway, importer, poller, exporter, paging.
    for prefix in ("courier_sftp", "courier_import", "courier_poller", "courier_export",
                   "courier_incidents", "courier_notifications", "courier_outbox"):  # fmt: skip
        assert any(u.startswith(prefix) for u in used), prefix


def test_chart_templates_load_the_shipped_files() -> None:
    templates = "\n".join(p.read_text() for p in (CHART / "templates").glob("*.yaml"))
    for name in re.findall(r'\.Files\.Get "([^"]+)"', templates):
        assert (CHART / name).is_file(), name
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["prometheusRules"]["enabled"] and values["grafanaDashboard"]["enabled"]
