"""A service stop lets the step in flight finish before the cancellation goes on."""

from __future__ import annotations

import asyncio

import pytest

from courier.common.tasks import uninterrupted


async def test_a_cancelled_caller_lets_the_step_finish_then_stops() -> None:
    finished: list[str] = []
    started = asyncio.Event()

    async def step() -> str:
        started.set()
        await asyncio.sleep(0.2)  # a database call, say
        finished.append("step")
        return "done"

    caller = asyncio.create_task(uninterrupted(step()))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert finished == ["step"]  # not cut in half


async def test_a_step_that_never_ends_is_cut_after_the_grace() -> None:
    cut = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cut.set()
            raise

    caller = asyncio.create_task(uninterrupted(stuck(), grace=0.1))
    await asyncio.sleep(0.05)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.wait_for(cut.wait(), 1)


async def test_without_cancellation_it_is_the_step_itself() -> None:
    async def step() -> int:
        return 7

    assert await uninterrupted(step()) == 7
    with pytest.raises(ValueError):

        async def bad() -> None:
            raise ValueError("no")

        await uninterrupted(bad())
