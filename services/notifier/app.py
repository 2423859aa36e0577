"""Notifier process wiring: a durable consumer routes the notices each
`courier.notice.raised` names; sending and escalation are loops over the notifier's own
tables by the runtime's clock. Routing wakes the send loop at once, so one batch is sent
while the next is routed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from courier.common.events import NoticesRaised
from courier.common.runtime import Runtime
from courier.common.tasks import uninterrupted
from courier.notifier.deliver import Channels, escalate_due, route_notices, send_due
from courier.notifier.mail import smtp_mail
from courier.notifier.rota import load_rota
from courier.notifier.sms import sms_sender

ROUTER = "notifier-notices"


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


async def main(runtime: Runtime) -> None:
    db, settings, clock = runtime.db, runtime.settings, runtime.clock
    channels = Channels(sms=sms_sender(settings), mail=smtp_mail(settings))
    messages = asyncio.Event()

    async def on_notices(event: NoticesRaised) -> None:
        async with db.session() as session:
            rota = await load_rota(session)
        if await route_notices(db, clock.now(), rota, settings, event.notice_ids):
            messages.set()

    async def escalate() -> bool:
        async with db.session() as session:
            rota = await load_rota(session)
        escalated = await escalate_due(db, clock.now(), rota, settings)
        if escalated:
            messages.set()
        return bool(escalated)

    async def send() -> bool:
        return bool(await send_due(db, clock.now(), channels, settings, clock))

    runtime.bus.consume(NoticesRaised, ROUTER, on_notices)
    # Escalations fall due by time alone: nothing wakes that loop early.
    await runtime.run(loop(runtime, asyncio.Event(), escalate), loop(runtime, messages, send))
