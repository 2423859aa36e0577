"""Gateway process wiring."""

from __future__ import annotations

from datetime import timedelta

from courier.common.runtime import Runtime
from courier.gateway.audit import AuditLog
from courier.gateway.bans import Guard
from courier.gateway.credentials import PasswordChecker
from courier.gateway.drain import Drain
from courier.gateway.expiry import keep_checking
from courier.gateway.server import GatewayContext, start
from courier.gateway.sweeper import keep_sweeping


async def main(runtime: Runtime) -> None:
    """Serve SFTP until stopped.

    The stop goes in order: the drain (no new connections, open sessions left to
    finish until `gateway_drain_seconds` after it began, then disconnected and wound
    down with their last audit lines added), the periodic writers ended between two
    transactions, one last audit flush, then the database closes. A drain asked for
    earlier (`courier gateway drain`, the preStop hook) is the same drain.
    """
    settings = runtime.settings
    guard = Guard(settings, runtime.db)
    audit = AuditLog(runtime.db, every=settings.gateway_audit_flush_seconds)
    ctx = GatewayContext(
        settings,
        runtime.db,
        runtime.bus,
        runtime.storage,
        guard,
        audit,
        passwords=PasswordChecker(at_once=settings.gateway_password_checks_at_once),
        clock=runtime.clock,
    )
    server = await start(ctx)
    runtime.log.info("sftp listening", host=settings.gateway_host, port=settings.gateway_port)
    drain = Drain(ctx, server, settings.gateway_drain_seconds)
    runtime.ready_checks["accepting_sessions"] = drain.accepting
    runtime.health_routes.append(drain.route())

    try:
        await runtime.run(
            guard.keep_fresh(),
            audit.run(),
            keep_checking(runtime.db, settings.gateway_password_check_seconds, runtime.clock),
            keep_sweeping(
                runtime.storage,
                settings.gateway_sweep_seconds,
                timedelta(seconds=settings.gateway_temporary_max_age_seconds),
                runtime.clock,
            ),
            drain=drain.wait,
            last=audit.flush,
        )
    finally:
        server.close()  # also when the service failed before it could stop in order
