"""The image: a pinned base, a non-root user, nothing written outside /tmp, a healthcheck,
and `courier service NAME` as its entrypoint, which starts every service, reports ready
and stops cleanly on SIGTERM (run here outside a container, as the image runs it)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from courier.cli.service import SERVICES
from courier.common.storage import file_url
from tests.support.chart import CHECKOV, manifests, needs_checkov, needs_helm, sets
from tests.support.dev_stack import without_courier_settings
from tests.support.infra import SqliteDatabases, free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    parsed = [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]
    stages = [i for i, (word, _) in enumerate(parsed) if word.upper() == "FROM"]
    return [(word.upper(), args) for word, args in parsed[stages[-1] :]]


def instruction(name: str) -> str:
    found = [args for word, args in instructions() if word == name]
    assert found, f"Dockerfile has no {name}"
    return found[-1]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in instructions():
        if word == "ENV":
            env.update(pair.split("=", 1) for pair in args.split())
    return env


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [HADOLINT, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_checkov
def test_dockerfile_passes_every_checkov_check() -> None:
    assert CHECKOV is not None
    result = subprocess.run(
        [CHECKOV, "--framework", "dockerfile", "-f", str(DOCKERFILE), "--skip-download",
         "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )  # fmt: skip
    summary = json.loads(result.stdout)["summary"]
    assert summary["failed"] == 0 and summary["passed"] > 0, result.stdout


def test_image_is_pinned_non_root_and_writes_only_to_tmp() -> None:
    for base in re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), re.M):
        # An exact release (python:3.11.11-slim-bookworm) or a digest, never a moving tag.
        exact = re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+(-[\w.-]+)?", base)
        assert exact or re.search(r"@sha256:[0-9a-f]{64}$", base), base
    user = instruction("USER")
    assert re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user), f"numeric non-root user: {user}"
    env = image_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    for variable in ("HOME", "TMPDIR", "XDG_CACHE_HOME"):
        assert env[variable].startswith("/tmp"), variable
    # The one other place it writes is the gateway's key directory, a volume or a Secret.
    assert env["COURIER_GATEWAY_HOST_KEY_DIR"].startswith("/var/lib/courier/")


def test_healthcheck_asks_the_health_port() -> None:
    check = instruction("HEALTHCHECK")
    assert "/healthz" in check and "COURIER_HEALTH_PORT" in check and "9100" in check
    assert image_env()["COURIER_HEALTH_PORT"] == "9100"


def test_entrypoint_is_courier_service_and_the_default_a_real_service() -> None:
    assert json.loads(instruction("ENTRYPOINT")) == ["courier", "service"]
    cmd = json.loads(instruction("CMD"))
    assert len(cmd) == 1 and cmd[0] in SERVICES


@needs_helm
def test_every_chart_container_runs_a_real_command_through_the_entrypoint() -> None:
    """Deployments pass the service's name to `courier service`; Jobs replace the
    entrypoint with `courier` and a command the CLI has."""
    entrypoint = json.loads(instruction("ENTRYPOINT"))
    docs = manifests(*sets(**{"specs.tenants": {"acme": {"feeds": []}}, "specs.oncall": {}}))
    services, jobs = [], []
    for doc in docs:
        if doc["kind"] not in {"Deployment", "Job"}:
            continue
        pod = doc["spec"]["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            argv = c.get("command", entrypoint) + c.get("args", [])
            (services if doc["kind"] == "Deployment" else jobs).append(argv)
    assert sorted(argv[2] for argv in services) == sorted(SERVICES)
    assert all(argv[:2] == ["courier", "service"] and len(argv) == 3 for argv in services)
    courier = str(Path(sys.executable).parent / "courier")
    assert {argv[1] for argv in jobs} >= {"db", "feeds"}
    for argv in jobs:
        assert argv[0] == "courier", argv
        usage = subprocess.run(
            [courier, *argv[1:3], "--help"], capture_output=True, text=True, timeout=60
        )
        assert usage.returncode == 0, (argv, usage.stderr)


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> SqliteDatabases:
    dbs = SqliteDatabases(tmp_path_factory.mktemp("image-sqlite"))
    dbs.prepare_template()
    return dbs


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode} before ready:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"/readyz not 200 within {within} s:\n{log.read_text()[-3000:]}")


@pytest.mark.parametrize("name", SERVICES)
def test_entrypoint_starts_the_service_ready_and_stops_on_sigterm(
    name: str, nats_server_url: str, migrated_sqlite: SqliteDatabases, tmp_path: Path
) -> None:
    entrypoint = json.loads(instruction("ENTRYPOINT"))
    # The image's `courier` is this environment's console script.
    argv = [str(Path(sys.executable).parent / entrypoint[0]), *entrypoint[1:], name]
    scratch, workdir = tmp_path / "tmp", tmp_path / "workdir"
    scratch.mkdir()
    workdir.mkdir()
    health_port = free_port()
    # Outside a container: the image's /tmp and key directory are the test's own.
    settings = dict(
        HOME=str(scratch),
        TMPDIR=str(scratch),
        XDG_CACHE_HOME=str(scratch / ".cache"),
        COURIER_GATEWAY_HOST_KEY_DIR=str(scratch / "hostkeys"),
        COURIER_HEALTH_HOST="127.0.0.1",
        COURIER_HEALTH_PORT=str(health_port),
        COURIER_GATEWAY_HOST="127.0.0.1",
        COURIER_GATEWAY_PORT=str(free_port()),
        COURIER_CONSOLE_HOST="127.0.0.1",
        COURIER_CONSOLE_PORT=str(free_port()),
        COURIER_DATABASE_URL=migrated_sqlite.create(),
        COURIER_NATS_URL=nats_server_url,
        COURIER_NATS_NAMESPACE=f"t{uuid.uuid4().hex[:10]}",
        COURIER_STORAGE_URL=file_url(scratch / "storage"),
        COURIER_SMS_PROVIDER="none",
        COURIER_LOG_JSON="true",
    )
    env = without_courier_settings(**{**image_env(), **settings})
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_ready(proc, health_port, log)
            assert httpx.get(f"http://127.0.0.1:{health_port}/healthz", timeout=2).is_success
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=45)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 0, log.read_text()[-3000:]
    # Nothing was written to the working directory (a read-only root in the image).
    assert list(workdir.iterdir()) == []
