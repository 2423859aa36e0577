"""Notifier process wiring: routing and sending run as two loops by the runtime's clock,
so one batch is sent while the next is routed. Routing looks at once when the monitor
nudges over the bus (it committed notices), sending when routing planned messages;
each also polls, so a lost nudge costs a poll interval and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from courier.common.events import NOTICES_READY
from courier.common.runtime import Runtime
from courier.common.tasks import uninterrupted
from courier.notifier.deliver import Channels, escalate_due, route_notices, send_due
from courier.notifier.mail import smtp_mail
from courier.notifier.rota import load_rota
from courier.notifier.sms import sms_sender


async def loop(runtime: Runtime, wake: asyncio.Event, step: Callable[[], Awaitable[bool]]) -> None:
    while True:
        wake.clear()
        try:
            if await uninterrupted(step()):
                continue  # a burst: look again before sleeping
        except Exception as exc:  # keep paging through a database blip
            runtime.log.exception("notifier pass failed", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), runtime.settings.notifier_tick_seconds)


async def dispatch(runtime: Runtime, channels: Channels) -> None:
    db, settings, clock = runtime.db, runtime.settings, runtime.clock
    notices, messages = asyncio.Event(), asyncio.Event()
    await runtime.bus.on_nudge(NOTICES_READY, notices)

    async def route() -> bool:
        now = clock.now()
        async with db.session() as session:
            rota = await load_rota(session)
        planned = await route_notices(db, now, rota, settings)
        planned += await escalate_due(db, now, rota, settings)
        if planned:
            messages.set()
        return bool(planned)

    async def send() -> bool:
        return bool(await send_due(db, clock.now(), channels, settings, clock))

    await asyncio.gather(loop(runtime, notices, route), loop(runtime, messages, send))


async def main(runtime: Runtime) -> None:
    channels = Channels(sms=sms_sender(runtime.settings), mail=smtp_mail(runtime.settings))
    await runtime.run(dispatch(runtime, channels))
