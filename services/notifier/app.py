"""Notifier process wiring: route, escalate and send by the runtime's clock, at once when
the monitor nudges over the bus (it committed notices), else on a short poll."""

from __future__ import annotations

import asyncio
import contextlib

from courier.common.events import NOTICES_READY
from courier.common.runtime import Runtime
from courier.notifier.deliver import Channels, escalate_due, route_notices, send_due
from courier.notifier.mail import smtp_mail
from courier.notifier.rota import load_rota
from courier.notifier.sms import sms_sender


async def dispatch(runtime: Runtime, channels: Channels) -> None:
    db, settings = runtime.db, runtime.settings
    wake = asyncio.Event()
    await runtime.bus.on_nudge(NOTICES_READY, wake)
    while True:
        wake.clear()
        busy = False
        try:
            now = runtime.clock.now()
            async with db.session() as session:
                rota = await load_rota(session)
            busy = bool(await route_notices(db, now, rota, settings))
            busy |= bool(await escalate_due(db, now, rota, settings))
            busy |= bool(await send_due(db, now, channels, settings, runtime.clock))
        except Exception as exc:  # keep paging through a database blip
            runtime.log.exception("notifier pass failed", error=str(exc))
        if busy:
            continue  # a burst: look again before sleeping
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), settings.notifier_tick_seconds)


async def main(runtime: Runtime) -> None:
    channels = Channels(sms=sms_sender(runtime.settings), mail=smtp_mail(runtime.settings))
    await runtime.run(dispatch(runtime, channels))
