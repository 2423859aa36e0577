"""Prometheus's own tool checks what the chart ships: the alert rules load, each alert fires
on the series it is for and stays quiet on the others, and every dashboard query parses."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.chart import CHART, helm, needs_helm

ALERTS = CHART / "files" / "alerts.yaml"
DASHBOARD = CHART / "files" / "dashboard.json"
UNIT_TESTS = Path(__file__).parent / "data" / "alerts.promtool.yaml"
RELEASE = "courier"
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="no promtool (Debian package `prometheus`; `make test` installs it)"
)
# Grafana's own variables, as Grafana substitutes them before Prometheus sees a query.
GRAFANA_VARIABLES = {
    "$__rate_interval": "4m",
    "$__interval": "1m",
    "$__range": "24h",
    "${__rate_interval}": "4m",
    "${__interval}": "1m",
    "${__range}": "24h",
}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, check=False, cwd=cwd, timeout=120
    )


def rendered_rules(release: str = RELEASE) -> str:
    """alerts.yaml as templates/prometheusrule.yaml renders it for `release`."""
    return ALERTS.read_text().replace("RELEASE-", f"{release}-")


def alert_names() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel, rows' panels included."""
    panels: list[dict[str, Any]] = json.loads(DASHBOARD.read_text())["panels"]
    found = []
    while panels:
        panel = panels.pop(0)
        panels.extend(panel.get("panels", []))
        found += [(panel["title"], t["expr"]) for t in panel.get("targets", []) if "expr" in t]
    return found


def test_alert_rules_pass_promtool_check_with_every_lint(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(rendered_rules())
    result = promtool("check", "rules", "--lint=all", "--lint-fatal", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout


def test_each_alert_fires_on_its_series_and_not_on_the_others(tmp_path: Path) -> None:
    (tmp_path / "alerts.yaml").write_text(rendered_rules())
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    result = promtool("test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_case_and_a_quiet_case() -> None:
    cases = [
        case
        for group in yaml.safe_load(UNIT_TESTS.read_text())["tests"]
        for case in group["alert_rule_test"]
    ]
    for name in alert_names():
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name}: nothing shows it firing"
        assert any(not case["exp_alerts"] for case in mine), f"{name}: nothing shows it quiet"
    assert {case["alertname"] for case in cases} <= set(alert_names()), "tests of a gone alert"


def test_unit_tests_catch_an_alert_that_fires_too_early(tmp_path: Path) -> None:
    """The unit tests are not vacuous: lowering a threshold makes them fail."""
    threshold = "courier_poller_errors_total[30m])) > 5"
    loosened = rendered_rules().replace(threshold, threshold.replace("> 5", "> 1"))
    assert loosened != rendered_rules()
    (tmp_path / "alerts.yaml").write_text(loosened)
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    result = promtool("test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "alertname: CourierPollerErrors" in result.stdout + result.stderr


def test_every_dashboard_query_passes_promtool(tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 12
    rules = []
    for n, (title, expr) in enumerate(queries):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"{title}: a dashboard variable promtool cannot check: {expr}"
        rules.append({"record": f"courier_dashboard:panel_{n}", "expr": expr})
    recording = tmp_path / "dashboard-queries.yaml"
    recording.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", "--lint=all", "--lint-fatal", str(recording))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_promtool_rejects_a_broken_query(tmp_path: Path) -> None:
    """The dashboard check would notice a typo: promtool parses every expression."""
    broken = tmp_path / "broken.yaml"
    rule = {"record": "courier_dashboard:broken", "expr": "sum by (source (rate(x[5m]))"}
    broken.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [rule]}]}))
    result = promtool("check", "rules", str(broken))
    assert result.returncode != 0


@needs_helm
def test_the_rendered_prometheusrule_passes_promtool(tmp_path: Path) -> None:
    """What the Prometheus operator loads: the chart's PrometheusRule, as helm renders it."""
    rendered = helm("template", RELEASE, str(CHART), "--show-only", "templates/prometheusrule.yaml")
    assert rendered.returncode == 0, rendered.stderr
    spec = yaml.safe_load(rendered.stdout)["spec"]
    rules = tmp_path / "rendered.yaml"
    rules.write_text(yaml.safe_dump(spec))
    result = promtool("check", "rules", "--lint=all", "--lint-fatal", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RELEASE-" not in rules.read_text()
    assert f'pod=~"{RELEASE}-.*"' in rules.read_text()
    # The same rules the unit tests exercise.
    assert spec == yaml.safe_load(rendered_rules())
