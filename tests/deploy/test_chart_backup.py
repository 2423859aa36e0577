"""The chart runs the backup service and configures regions from values."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from courier.common.settings import RegionStores
from tests.support.chart import (
    CHART,
    container,
    deployment,
    env_of,
    manifests,
    needs_helm,
    render,
    settings_from,
    values,
)

# values.yaml's camelCase region keys -> the RegionStores fields they become.
REGION_KEYS = {
    "storageUrl": "storage_url",
    "backupUrl": "backup_url",
    "sse": "sse",
    "kmsKeyId": "kms_key_id",
}
REGIONS = {
    "eu-west-2": {
        "storageUrl": "s3://courier-eu/primary?region=eu-west-2",
        "backupUrl": "s3://courier-eu-backup?region=eu-west-2",
        "sse": "aws:kms",
        "kmsKeyId": "alias/courier-eu",
    },
    "ap-southeast-2": {
        "storageUrl": "s3://courier-ap/primary?region=ap-southeast-2",
        "sse": "AES256",
    },
}


def template(name: str) -> str:
    return (CHART / "templates" / name).read_text()


def region_sets(regions: dict[str, dict[str, str]]) -> list[str]:
    return [f"config.regions.{n}.{k}={v}" for n, r in regions.items() for k, v in r.items()]


# Static checks: always run.


def test_values_enable_the_backup_service_in_the_shape_of_the_others() -> None:
    services = values()["services"]
    backup = services["backup"]
    assert backup["enabled"] is True
    assert backup["replicas"] >= 1
    assert backup["resources"]["requests"] and backup["resources"]["limits"]["memory"]
    assert backup["env"] == {}
    # Same block keys as the other background services (no ports: nothing calls it).
    assert set(backup) == set(services["importer"])


@needs_helm
def test_every_enabled_service_runs_with_probes_and_the_shared_secret() -> None:
    services = values()["services"]
    docs = manifests()
    for name in services:
        dep = deployment(docs, name)
        c = container(dep)
        assert c["args"] == [name]  # the image's entrypoint is `courier service`
        assert c["livenessProbe"] and c["readinessProbe"] and c["startupProbe"]
        assert c["envFrom"] == [{"secretRef": {"name": values()["existingSecret"]}}]
        assert dep["spec"]["replicas"] == services[name]["replicas"]
    without = manifests("--set", "services.backup.enabled=false")
    assert "backup" not in {
        d["metadata"]["labels"].get("app.kubernetes.io/component")
        for d in without
        if d["kind"] in ("Deployment", "PodDisruptionBudget", "NetworkPolicy")
    }


def test_regions_come_from_values_without_secrets() -> None:
    config = values()["config"]
    assert config["regions"] == {}  # one default region, as before regions existed
    assert config["defaultRegion"] == "local"
    assert values()["existingSecret"]
    helpers = template("_helpers.tpl")
    assert "COURIER_REGIONS" in helpers and 'include "courier.regions"' in helpers
    assert "COURIER_DEFAULT_REGION" in helpers and ".Values.config.defaultRegion" in helpers
    # Every values key the helper reads maps onto a RegionStores field.
    assert set(re.findall(r"\$r\.(\w+)", helpers)) == set(REGION_KEYS)
    for field in REGION_KEYS.values():
        assert field in RegionStores.model_fields
        assert f'"{field}"' in helpers, field


def test_new_values_keys_are_commented_and_the_example_is_valid() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    for key in ("  defaultRegion:", "  regions:", "  backup:"):
        (at,) = [i for i, line in enumerate(lines) if line.startswith(key)]
        assert lines[at - 1].lstrip().startswith("#"), key
    # The commented example under `regions:` is what an operator uncomments: it must parse
    # into the settings' RegionStores once mapped like the helper maps it.
    start = next(i for i, line in enumerate(lines) if line.startswith("  regions:"))
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("  #"):
            break
        block.append(line[4:])
    example = yaml.safe_load("\n".join(block))
    assert len(example) >= 2
    for region in example.values():
        assert set(region) <= set(REGION_KEYS)
        RegionStores(**{REGION_KEYS[k]: v for k, v in region.items()})


# Rendered checks: need helm.


@needs_helm
def test_rendered_chart_runs_backup_with_default_region(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = manifests()
    dep = deployment(docs, "backup")
    assert container(dep)["args"] == ["backup"]
    env = env_of(dep)
    assert "COURIER_REGIONS" not in env
    settings = settings_from(env, monkeypatch)
    assert list(settings.region_stores()) == ["local"]


@needs_helm
def test_rendered_regions_parse_into_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    sets = [*region_sets(REGIONS), "config.defaultRegion=eu-west-2"]
    docs = manifests(*[a for s in sets for a in ("--set", s)])
    for component in ("backup", "gateway", "importer", "console"):
        env = env_of(deployment(docs, component))
        json.loads(env["COURIER_REGIONS"])
        settings = settings_from(env, monkeypatch)
        stores = settings.region_stores()
        assert settings.default_region == "eu-west-2"
        assert stores["eu-west-2"] == RegionStores(
            storage_url="s3://courier-eu/primary?region=eu-west-2",
            backup_url="s3://courier-eu-backup?region=eu-west-2",
            sse="aws:kms",
            kms_key_id="alias/courier-eu",
        )
        assert stores["ap-southeast-2"].backup_url is None
        assert stores["ap-southeast-2"].sse == "AES256"


@needs_helm
@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (["config.regions.eu.storageUrl=s3://b", "config.defaultRegion=ap"], "defaultRegion"),
        (["config.regions.local.storageUrl=s3://b", "config.regions.local.sse=DES"], "sse"),
        (["config.regions.local.storageUrl=s3://key:secret@b"], "credentials"),
        (["config.regions.local.backupUrl=s3://b"], "storageUrl is required"),
    ],
)
def test_rendering_refuses_broken_regions(extra: list[str], error: str) -> None:
    done = render(*[a for s in extra for a in ("--set", s)])
    assert done.returncode != 0 and error in done.stderr
