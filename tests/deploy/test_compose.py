"""docker-compose.yml is a valid Compose file that runs every Courier service through the
image's entrypoint, once PostgreSQL and NATS are healthy and the buckets and the database are
ready, with regions and mail settings that the services' own settings accept."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
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
ONE_SHOT_JOBS = (BUCKET_JOB, "migrate")
SMTP_CATCHER = "mailpit"
CHECK_JSONSCHEMA = shutil.which("check-jsonschema") or str(
    Path(sys.executable).parent / "check-jsonschema"
)


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
        # The image's entrypoint is `courier service`; the command names the service.
        assert svc["command"] == [name], name
        assert "entrypoint" not in svc, name
        deps = svc["depends_on"]
        assert deps[BUCKET_JOB] == {"condition": "service_completed_successfully"}, name
        assert deps["migrate"] == {"condition": "service_completed_successfully"}, name
        assert deps["postgres"] == {"condition": "service_healthy"}, name
        assert deps["nats"] == {"condition": "service_healthy"}, name
        assert "/healthz" in " ".join(svc["healthcheck"]["test"]), name
        # As on Kubernetes: nothing written outside /tmp, nothing to escalate to.
        assert svc["read_only"] is True and svc["tmpfs"] == ["/tmp"], name
        assert svc["cap_drop"] == ["ALL"], name
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


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    """The Compose specification's JSON schema, as check-jsonschema vendors it."""
    return subprocess.run(
        [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_compose_file_validates_against_the_compose_specification() -> None:
    result = check_jsonschema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_misspelt_compose_file(tmp_path: Path) -> None:
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["importer"]["depends_on"]["nats"] = {"condition": "healthy"}
    broken["services"]["gateway"]["helthcheck"] = {"test": ["CMD", "true"]}
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = check_jsonschema(path)
    assert result.returncode != 0
    assert "helthcheck" in result.stdout and "healthy" in result.stdout, result.stdout


def test_every_container_declares_its_health(compose: dict[str, Any]) -> None:
    """Long-running containers are checked; one-shot jobs are judged by their exit status,
    which every service waits on."""
    assert compose["name"] == "courier"
    for name, svc in compose["services"].items():
        if name in ONE_SHOT_JOBS:
            assert svc["restart"] == "no" and svc["healthcheck"] == {"disable": True}, name
            continue
        assert svc["healthcheck"]["test"][0] == "CMD", name
        assert svc["restart"] == "unless-stopped", name
    migrate = compose["services"]["migrate"]
    assert migrate["entrypoint"] == ["courier"] and migrate["command"] == ["db", "upgrade"]
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_mail_goes_to_the_smtp_catcher(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    catcher = compose["services"][SMTP_CATCHER]
    assert catcher["healthcheck"]["test"]
    assert "8025:8025" in catcher["ports"]
    notifier = compose["services"]["notifier"]
    assert notifier["depends_on"][SMTP_CATCHER] == {"condition": "service_healthy"}
    settings = settings_from(env_of(compose, "notifier"), monkeypatch)
    assert settings.smtp_url is not None
    url = urlparse(settings.smtp_url.get_secret_value())
    assert (url.hostname, url.port) == (SMTP_CATCHER, 1025)
    assert settings.sms_provider == "none"
