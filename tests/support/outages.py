"""What fault tests need around the services they run: the settings of a test as the
environment of a `courier service` process, a PostgreSQL database those processes share,
and a small disk that fills up."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from courier.common.settings import Settings
from tests.support import infra
from tests.support.deployed import Deployment

# Set per process by `tests.support.deployed`.
_PER_PROCESS = {"health_port", "service_name"}


def _env_value(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(
            {
                k: v.model_dump(mode="json") if isinstance(v, BaseModel) else v
                for k, v in value.items()
            }
        )
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """`settings` as the `COURIER_*` variables a service process reads them from."""
    env = {
        f"COURIER_{name.upper()}": _env_value(value)
        for name in Settings.model_fields
        if name not in _PER_PROCESS and (value := getattr(settings, name)) is not None
    }
    return {**env, **extra}


def tmpfs_unavailable() -> str | None:
    """Why a tmpfs cannot be mounted here (None when it can)."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "mount/umount are not installed"
    return None


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (as `mount -o size=` takes it) at `path`, unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        raise RuntimeError(f"tmpfs not mounted at {path}: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@pytest.fixture
def database_url(postgres_databases: infra.PostgresDatabases | None) -> Iterator[str]:
    """A fresh PostgreSQL database: the one production runs, shared by service processes."""
    if postgres_databases is None:
        pytest.skip("no PostgreSQL (set COURIER_TEST_DATABASE_URL or run Docker)")
    url = postgres_databases.create()
    try:
        yield url
    finally:
        postgres_databases.drop(url)


@contextlib.contextmanager
def logs_on_failure(stack: Deployment, lines: int = 30) -> Iterator[None]:
    """A failed assertion inside the block shows the tail of every service's log, which
    pytest's temporary folders do not keep for long."""
    try:
        yield
    except AssertionError as exc:
        tails = "\n".join(f"--- {s.log_path.name}\n{s.log_tail(lines)}" for s in stack.services)
        raise AssertionError(f"{exc}\n{tails}") from exc
