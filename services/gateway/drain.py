"""Draining a gateway replica: no new sessions, open ones finish, the rest cut at a deadline.

Kubernetes runs `courier gateway drain` as the pod's preStop hook, which asks this
process over its health port (`POST /drain`, loopback only); SIGTERM drains the same
way when nothing asked before. From the first ask: the listener closes (partners'
new connections go to other replicas), readiness turns false (the Service stops
sending traffic), and open sessions, with their transfers, have until
`COURIER_GATEWAY_DRAIN_SECONDS` after that to end on their own. Whatever is still
open then is disconnected and audited, as any stop does.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from courier.common.logging import get_logger
from courier.gateway.server import GatewayContext

log = get_logger(__name__)

# After the deadline, how long disconnected sessions get to close their files and audit.
WIND_DOWN_SECONDS = 5.0


class Drain:
    """One replica's drain; started once, by whichever asks first."""

    def __init__(self, ctx: GatewayContext, server: asyncio.AbstractServer, within: float) -> None:
        self.ctx = ctx
        self.server = server
        self.within = within
        self.deadline: float | None = None
        self._done: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        return self._done is not None

    def begin(self) -> None:
        if self._done is not None:
            return
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + self.within
        # Connections the kernel accepted before the close are turned away too.
        self.ctx.stopping = True
        self.server.close()
        log.info("draining", sessions=len(self.ctx.connections), within=self.within)
        self._done = loop.create_task(self._finish())

    async def wait(self) -> None:
        """Drain (if not draining yet) and return once no session is left."""
        self.begin()
        assert self._done is not None
        await asyncio.shield(self._done)

    async def _finish(self) -> None:
        try:
            await asyncio.wait_for(self.ctx.busy.idle.wait(), self._left())
            log.info("drained: every session ended on its own")
            return
        except TimeoutError:
            pass
        log.warning("drain deadline reached: disconnecting", sessions=len(self.ctx.connections))
        await self.ctx.close_sessions(WIND_DOWN_SECONDS)

    def _left(self) -> float:
        if self.deadline is None:
            return self.within
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    async def accepting(self) -> bool:
        """Readiness: False from the start of a drain, so no new traffic is routed here."""
        return not self.started

    def status(self) -> dict[str, Any]:
        return {
            "draining": self.started,
            "drained": self._done is not None and self._done.done(),
            "sessions": len(self.ctx.connections),
            "seconds_left": round(self._left(), 1) if self.started else None,
        }

    def route(self) -> Route:
        """`GET /drain` reports; `POST /drain` starts the drain (from this host only)."""

        async def endpoint(request: Request) -> JSONResponse:
            if request.method == "POST":
                if not _loopback(request):
                    return JSONResponse({"error": "only from the gateway's own host"}, 403)
                self.begin()
            return JSONResponse(self.status())

        return Route("/drain", endpoint, methods=["GET", "POST"])


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
