"""Run Courier services in-process against real infrastructure, and wait for outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from courier.common.clock import Clock
from courier.common.runtime import Runtime
from courier.common.settings import Settings

T = TypeVar("T")


@contextlib.asynccontextmanager
async def running(
    name: str, settings: Settings, clock: Clock | None = None
) -> AsyncIterator[Runtime]:
    """Start a service's `main` as a task (on the test's clock, if given); stop it as
    SIGTERM would."""
    module = importlib.import_module(f"courier.{name}.app")
    runtime = Runtime(name, settings)
    if clock is not None:
        runtime.clock = clock
    task = asyncio.create_task(module.main(runtime), name=f"service-{name}")
    # Give subscribers time to bind before the test publishes.
    for _ in range(100):
        if task.done():
            task.result()
        if runtime.bus._started:
            break
        await asyncio.sleep(0.05)
    try:
        yield runtime
    finally:
        runtime.stopping.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


async def eventually(
    probe: Callable[[], Awaitable[T | None]], within: float = 20, interval: float = 0.1
) -> T:
    """Poll until `probe` returns something truthy (the outcome a user waits for)."""
    deadline = asyncio.get_running_loop().time() + within
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {within} s (last: {last!r})")


async def at_once(value: T) -> T:
    """A value as an awaitable, for `eventually` probes that need no I/O."""
    return value
