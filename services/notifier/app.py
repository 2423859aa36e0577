"""Notifier process wiring: route, escalate and send on a short loop by the runtime's clock."""

from __future__ import annotations

import asyncio

from courier.common.runtime import Runtime
from courier.notifier.deliver import Channels, escalate_due, route_notices, send_due
from courier.notifier.mail import smtp_mail
from courier.notifier.rota import load_rota
from courier.notifier.sms import sms_sender


async def dispatch(runtime: Runtime, channels: Channels) -> None:
    db, settings = runtime.db, runtime.settings
    while True:
        try:
            now = runtime.clock.now()
            async with db.session() as session:
                rota = await load_rota(session)
            await route_notices(db, now, rota, settings)
            await escalate_due(db, now, rota, settings)
            await send_due(db, now, channels, settings, runtime.clock)
        except Exception as exc:  # keep paging through a database blip
            runtime.log.exception("notifier pass failed", error=str(exc))
        await asyncio.sleep(settings.notifier_tick_seconds)


async def main(runtime: Runtime) -> None:
    channels = Channels(sms=sms_sender(runtime.settings), mail=smtp_mail(runtime.settings))
    await runtime.run(dispatch(runtime, channels))
