"""docker-compose.yml runs every Courier service, after the buckets exist, with regions
that the services' own settings accept."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from courier.cli.service import SERVICES as CLI_SERVICES
from courier.common.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
SERVICES = ("gateway", "poller", "importer", "exporter", "monitor", "notifier", "backup", "console")
BUCKET_JOB = "minio-bucket"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def env_of(compose: dict[str, Any], service: str) -> dict[str, str]:
    return {k: str(v) for k, v in compose["services"][service]["environment"].items()}


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a container with `env` builds (nothing leaks in from this process)."""
    for key in [k for k in os.environ if k.startswith("COURIER_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def bucket_of(url: str) -> str:
    return urlparse(url).netloc


def test_every_service_runs_after_the_buckets_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(SERVICES) <= set(services)
    assert set(SERVICES) == set(CLI_SERVICES)
    for name in SERVICES:
        svc = services[name]
        assert svc["command"] == ["service", name], name
        deps = svc["depends_on"]
        assert deps[BUCKET_JOB] == {"condition": "service_completed_successfully"}, name
        assert deps["migrate"] == {"condition": "service_completed_successfully"}, name
        assert svc["healthcheck"]["test"], name
    # The job waits for MinIO to answer, then exits (never restarted into a loop).
    job = services[BUCKET_JOB]
    assert job["depends_on"]["minio"]["condition"] == "service_healthy"
    assert services["minio"]["healthcheck"]["test"]
    assert job.get("restart", "no") == "no"


def test_regions_parse_into_settings_for_the_default_region(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    job = compose["services"][BUCKET_JOB]["entrypoint"]
    made = set(re.findall(r"mc mb (?:--ignore-existing |-p )?m/([\w.-]+)", job))
    versioned = set(re.findall(r"mc version enable m/([\w.-]+)", job))
    for name in SERVICES:
        settings = settings_from(env_of(compose, name), monkeypatch)
        assert settings.regions, f"{name}: COURIER_REGIONS unset"
        stores = settings.region_stores()[settings.default_region]
        assert stores.storage_url.startswith("s3://") and stores.backup_url, name
        assert stores.backup_url.startswith("s3://"), name
        assert stores.storage_url != stores.backup_url, name
        for url in (stores.storage_url, stores.backup_url):
            assert "@" not in urlparse(url).netloc, "credentials belong in AWS_*"
            assert "endpoint=http://minio:9000" in url, url
        # The region's buckets are the ones the job creates; backups are versioned.
        assert bucket_of(stores.storage_url) in made
        assert bucket_of(stores.backup_url) in made & versioned
        # The demo tenant (created without --region) lands in a configured region.
        assert settings.default_region in settings.region_stores()
        assert stores.sse in {"AES256", "aws:kms"}
    # MinIO can only serve SSE-S3 with a key configured.
    assert compose["services"]["minio"]["environment"]["MINIO_KMS_SECRET_KEY"]
