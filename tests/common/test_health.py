"""Every service answers the probes Kubernetes and Prometheus use."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from courier.common.settings import Settings
from tests.support.infra import free_port
from tests.support.services import running


async def _get(port: int, path: str) -> httpx.Response:
    """GET once the service's health server is listening."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        for _ in range(100):
            try:
                return await http.get(path)
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"nothing listening on {port}")


async def test_service_serves_liveness_readiness_and_metrics(settings: Settings) -> None:
    port = free_port()
    async with running("importer", settings.model_copy(update={"health_port": port})):
        assert (await _get(port, "/healthz")).status_code == 200
        ready = await _get(port, "/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": True, "bus": True}
        metrics = (await _get(port, "/metrics")).text
        assert "courier_import_seconds" in metrics and "python_info" in metrics


async def test_readiness_fails_when_the_database_is_gone(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    broken = settings.model_copy(
        update={
            "health_port": port,
            "database_url": f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db",
        }
    )
    async with running("poller", broken):
        ready = await _get(port, "/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] is False
