"""Console process wiring: the API under uvicorn, with the service's health endpoints."""

from __future__ import annotations

import uvicorn

from courier.common.health import health_routes
from courier.common.runtime import Runtime
from courier.console.api import create_app


async def main(runtime: Runtime) -> None:
    app = create_app(runtime.db, runtime.storage, runtime.settings)
    app.router.routes.extend(health_routes(runtime.ready_checks))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=runtime.settings.console_host,
            port=runtime.settings.console_port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    await runtime.run(server.serve())
