"""Per-service `/metrics`, `/healthz` and `/readyz` on a small HTTP server of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ReadinessCheck = Callable[[], Awaitable[bool]]


def health_routes(checks: dict[str, ReadinessCheck], extra: Sequence[Route] = ()) -> list[Route]:
    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        results: dict[str, bool] = {}
        for name, check in checks.items():
            try:
                results[name] = bool(await asyncio.wait_for(check(), timeout=3))
            except Exception:
                results[name] = False
        ok = all(results.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": results},
            status_code=200 if ok else 503,
        )

    return [
        Route("/metrics", metrics),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *extra,
    ]


async def serve_health(
    host: str, port: int, checks: dict[str, ReadinessCheck], extra: Sequence[Route] = ()
) -> None:
    """Run until cancelled; port 0 means the service was asked not to expose one.

    `extra` routes are a service's own local controls (the gateway's `/drain`)."""
    if not port:
        await asyncio.Event().wait()
        return
    app = Starlette(routes=health_routes(checks, extra))
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    await server.serve()
